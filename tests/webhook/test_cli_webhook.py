"""`vtconnect webhook sign|dead|replay` (connectors/cli/webhook.py): signatures that a real
receiver accepts, dead letters listed and queued again, secrets never printed."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

from click.testing import CliRunner

from connectors.cli.webhook import webhook
from connectors.webhook.outbox import SQLiteOutbox as Outbox

from .test_receiver import SECRET, WHSEC, post


def invoke(settings, args, stdin=None):
    return CliRunner().invoke(webhook, args, obj=SimpleNamespace(settings=settings), input=stdin)


def raw_sources():
    return {
        "webhook": {
            "sources": [
                {"name": "std", "format": "generic", "auth": "standard", "secret": WHSEC},
                {"name": "hub", "format": "generic", "auth": "github", "secret": SECRET},
                {"name": "bearer", "format": "auto", "auth": "bearer", "secret": SECRET},
            ]
        }
    }


def headers_of(output):
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


async def test_sign_produces_headers_the_receiver_accepts(receiver, settings, tmp_path):
    url, _ = await receiver()
    s = replace(settings, raw=raw_sources())
    body = json.dumps({"message": "seen example.org"}).encode()
    f = tmp_path / "alert.json"
    f.write_bytes(body)
    r = invoke(s, ["sign", "std", str(f), "--id", "msg_cli_1"])
    assert r.exit_code == 0, r.output
    h = headers_of(r.output)
    assert h["webhook-id"] == "msg_cli_1" and h["webhook-signature"].startswith("v1,")
    status, resp = await post(url, "/v1/alerts/generic?source=std", body, h)
    assert status == 202, resp
    r = invoke(s, ["sign", "hub"], stdin=body)  # the body from stdin
    assert r.exit_code == 0, r.output
    status, resp = await post(url, "/v1/alerts/generic?source=hub", body, headers_of(r.output))
    assert status == 202, resp
    # A signature over other bytes is refused: the command really signs the body it read.
    status, _ = await post(url, "/v1/alerts/generic?source=hub", body + b"\n", headers_of(r.output))
    assert status == 401


def test_sign_never_prints_a_plain_secret(settings):
    s = replace(settings, raw=raw_sources())
    r = invoke(s, ["sign", "bearer"], stdin=b"{}")
    assert r.exit_code == 2 and "nothing to sign" in r.output and SECRET not in r.output
    r = invoke(s, ["sign", "ghost"], stdin=b"{}")
    assert r.exit_code == 2 and "no source 'ghost'" in r.output


def test_dead_letters_listed_and_replayed(settings):
    s = replace(settings, raw=raw_sources())
    outbox = Outbox(s.state_path / "webhook.db")
    try:
        jid, _ = outbox.accept("bearer", "generic", b"{}", "bearer/k1")
        outbox.claim()
        outbox.finish(jid, "done", {"alerts": []}, deliver=True)
        outbox.retry_later(jid, 8, 0, "HTTP 503", dead=True)
    finally:
        outbox.close()
    r = invoke(s, ["dead"])
    assert r.exit_code == 0 and f"{jid}\tbearer\t8\tHTTP 503" in r.output
    r = invoke(s, ["replay", "--job", "no-such-job"])
    assert r.exit_code == 1 and "0 callback(s)" in r.output
    r = invoke(s, ["replay", "--job", jid])
    assert r.exit_code == 0 and "1 callback(s) queued again" in r.output
    r = invoke(s, ["dead"])
    assert jid not in r.output
    outbox = Outbox(s.state_path / "webhook.db")
    try:
        job = outbox.get(jid)
        assert job is not None and job["delivery"] == "pending" and job["attempts"] == 0
    finally:
        outbox.close()


def test_bad_config_is_a_usage_error(settings):
    s = replace(settings, raw={"webhook": {"sources": [{"name": "x", "secret": "short"}]}})
    r = invoke(s, ["dead"])
    assert r.exit_code == 2 and "at least 16 characters" in r.output
