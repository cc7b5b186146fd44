"""`GET /v1/jobs/{id}` against a real `vtconnect serve` (issue 10, item 11): a job carries the
whole enriched alert, so it is shown only for its token (from the 202) or the source's own
credentials; anonymous, wrong-token and other-job-token requests get a JSON 401."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from . import campaign


@pytest.fixture(scope="module")
def served(tmp_path_factory, emulator_url):
    srv = campaign.start(tmp_path_factory.mktemp("jobs"), emulator_url)
    yield srv
    srv.stop()


def call(url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def accept(served, alert):
    status, body = call(
        served.urls["webhook"] + "/v1/alerts/generic",
        json.dumps(alert).encode(),
        {"Authorization": f"Bearer {campaign.TOKEN}", "Content-Type": "application/json"},
    )
    assert status == 202, body
    return body


def test_jobs_need_their_token_or_the_source_credentials(served):
    base = served.urls["webhook"]
    job = accept(served, {"user": "alice.secret-user", "host": "ws-0042", "ip": "203.0.113.9"})
    other = accept(served, {"user": "bob", "ip": "203.0.113.10"})
    jid, token = job["job"], job["token"]
    assert job["status"] == f"/v1/jobs/{jid}?token={token}"
    refused = [
        {},  # anonymous
        {"Authorization": "Bearer " + other["token"]},  # another job's token
        {"Authorization": "Bearer " + token[:-2] + "AA"},
        {"Authorization": "Bearer " + "é" * 8},
        {"Authorization": "Basic " + token},
    ]
    for headers in refused:
        status, body = call(f"{base}/v1/jobs/{jid}", headers=headers)
        assert status == 401 and set(body) == {"error", "message"}, (headers, body)
        assert "alice" not in json.dumps(body)
    for query in ("", "?token=", f"?token={other['token']}", "?token=%00"):
        assert call(f"{base}/v1/jobs/{jid}{query}")[0] == 401
    # An unknown job looks the same as a known one without credentials.
    assert call(f"{base}/v1/jobs/{uuid.uuid4()}")[0] == 401
    for url, headers in [
        (base + job["status"], {}),
        (f"{base}/v1/jobs/{jid}", {"Authorization": f"Bearer {token}"}),
        (f"{base}/v1/jobs/{jid}", {"Authorization": f"Bearer {campaign.TOKEN}"}),  # the source's
    ]:
        status, body = call(url, headers=headers)
        assert status == 200 and body["id"] == jid, body
    assert "Traceback" not in served.log()
