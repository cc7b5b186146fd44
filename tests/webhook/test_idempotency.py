"""What counts as a repeat: a sender's retry is answered with the first job, while another result
of the same search, an update of the same object or a batch that merely starts with a known
alert is new work (dropping it would lose an alert)."""

from __future__ import annotations

import json
import time

from connectors.webhook import auth, formats

from .test_receiver import BEARER, SPLUNK, WHSEC, post


def test_keys_tell_repeats_from_new_alerts():
    other_result = dict(SPLUNK, result={"dest": "example.org"})
    assert formats.idempotency_key("splunk", SPLUNK) == formats.idempotency_key(
        "splunk", json.loads(json.dumps(SPLUNK))
    )
    assert formats.idempotency_key("splunk", SPLUNK) != formats.idempotency_key(
        "splunk", other_result
    )
    one = {"context": {"alerts": [{"kibana.alert.uuid": "u1"}]}}
    two = {"context": {"alerts": [{"kibana.alert.uuid": "u1"}, {"kibana.alert.uuid": "u2"}]}}
    assert formats.idempotency_key("elastic", one) == "elastic:u1"
    assert formats.idempotency_key("elastic", two) not in (None, "elastic:u1")
    created = {"objectType": "alert", "operation": "Creation", "object": {"_id": "~1"}}
    updated = {"objectType": "alert", "operation": "Update", "object": {"_id": "~1"}}
    assert formats.idempotency_key("thehive", created) != formats.idempotency_key(
        "thehive", updated
    )
    offense = {"id": 7, "offense_type": 0, "last_updated_time": 1700000000000}
    later = dict(offense, last_updated_time=1700000099000)
    assert formats.idempotency_key("qradar", offense) != formats.idempotency_key("qradar", later)
    # An id with characters a key should not carry is hashed, not dropped.
    assert formats.idempotency_key("datadog", {"id": "a b\u0000c"}).startswith("datadog:h")
    # A batch is keyed by all its alerts; one alert without an id means the body hash decides.
    assert formats.batch_key("splunk", [SPLUNK]) == formats.idempotency_key("splunk", SPLUNK)
    assert formats.batch_key("splunk", [SPLUNK, other_result]) not in (
        None,
        formats.batch_key("splunk", [SPLUNK]),
    )
    assert formats.batch_key("auto", [SPLUNK, {"message": "no id"}]) is None


async def _job(url, path, body, headers):
    status, resp = await post(url, path, body, headers)
    assert status in (200, 202), resp
    return status, resp["job"]


async def test_new_work_is_not_taken_for_a_repeat(receiver):
    url, _ = await receiver()
    path = "/v1/alerts/splunk?source=bearer"
    s1, first = await _job(url, path, SPLUNK, BEARER)
    s2, again = await _job(url, path, SPLUNK, BEARER)
    s3, other = await _job(url, path, dict(SPLUNK, result={"dest": "example.org"}), BEARER)
    assert (s1, s2, s3) == (202, 200, 202)
    assert again == first and other != first
    # NDJSON: the known alert first, then a new one: a new job, not the first one.
    ndjson = (json.dumps(SPLUNK) + "\n" + json.dumps(dict(SPLUNK, sid="s2"))).encode()
    s4, batch = await _job(url, path, ndjson, BEARER)
    assert s4 == 202 and batch not in (first, other)


async def test_standard_webhooks_retry_gets_the_first_job(receiver):
    """Senders retry under the same webhook-id (re-signed with a fresh timestamp)."""
    url, _ = await receiver()
    body = json.dumps({"message": "seen example.org"}).encode()
    jobs = []
    for delay in (0, 1):
        stamp = int(time.time()) + delay
        headers = {
            "webhook-id": "msg_retry",
            "webhook-timestamp": str(stamp),
            "webhook-signature": auth.sign_standard(WHSEC, "msg_retry", stamp, body),
        }
        status, resp = await post(url, "/v1/alerts/generic?source=std", body, headers)
        jobs.append((status, resp.get("job"), resp.get("duplicate")))
    assert jobs[0][0] == 202 and jobs[1] == (200, jobs[0][1], True)
    # A forged retry (same id, other body) still fails the signature.
    status, _ = await post(url, "/v1/alerts/generic?source=std", body + b" ", headers)
    assert status == 401


def test_old_finished_jobs_are_pruned_but_pending_work_stays(tmp_path):
    from connectors.webhook.outbox import SQLiteOutbox as Outbox

    box = Outbox(tmp_path / "jobs.db")
    ids = {}
    for name in ("done", "failed", "delivered", "pending", "dead", "queued", "recent"):
        ids[name], _ = box.accept("src", "generic", b"{}", idem=f"key-{name}")
    for name in ("done", "failed", "delivered", "pending", "dead", "recent"):
        wants_callback = name in ("delivered", "pending", "dead", "recent")
        box.finish(ids[name], "failed" if name == "failed" else "done", {}, deliver=wants_callback)
    box.delivered(ids["delivered"], 1)
    box.retry_later(ids["dead"], 5, 0, "gone", dead=True)
    box.delivered(ids["recent"], 1)
    box.db.execute("UPDATE jobs SET created = created - 8 * 86400 WHERE id != ?", (ids["recent"],))
    assert box.prune(time.time() - 7 * 86400, batch=1) == 3  # small batches: loops until done
    left = {name for name, jid in ids.items() if box.get(jid) is not None}
    assert left == {"pending", "dead", "queued", "recent"}
    # The idempotency key went with its job: the same alert is now new work.
    assert box.accept("src", "generic", b"{}", idem="key-done")[1] is True
    assert box.accept("src", "generic", b"{}", idem="key-pending")[1] is False
    box.close()
