"""One contract for both webhook outboxes (SQLite and a real PostgreSQL, tests/pg.py): durable
accept with idempotency keys, claims oldest first, results, callbacks with retries, dead
letters and replay, pruning. On PostgreSQL, several instances (replicas) share the jobs: a job
is claimed by one only, and a killed replica's jobs and callbacks are taken over once its
lease has run out."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

from connectors.webhook.outbox import Outbox, open_outbox


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return str(tmp_path / "webhook.db")


@pytest.fixture
def box(target):
    b = open_outbox(target)
    yield b
    b.close()


def test_accept_is_durable_and_idempotent(box, target):
    jid, new = box.accept("src", "generic", b'{"a": 1}', "src/k1")
    assert new and box.accept("src", "generic", b"other", "src/k1") == (jid, False)
    other, new = box.accept("src", "generic", b"{}", None)  # no key: always new
    assert new and other != jid and box.accept("src", "generic", b"{}", None)[1]
    box.close()
    reopened = open_outbox(target)  # committed before accept returned
    try:
        job = reopened.get(jid)
        assert job["state"] == "queued" and job["source"] == "src" and job["format"] == "generic"
        assert reopened.counts() == {"queued": 3} and reopened.get("nope") is None
    finally:
        reopened.close()


def test_claim_oldest_first_finish_and_requeue(box):
    ids = [box.accept("s", "generic", f'{{"n": {i}}}'.encode(), f"s/{i}")[0] for i in range(5)]
    got = box.claim(limit=3)
    assert [j["id"] for j in got] == ids[:3] and got[0]["body"] == b'{"n": 0}'
    assert [j["id"] for j in box.claim(limit=10)] == ids[3:]
    assert box.claim() == []  # everything is running
    box.finish(ids[0], "done", {"alerts": [1]}, deliver=False)
    box.finish(ids[1], "failed", {"error": "bad"})
    assert box.get(ids[0])["result"] == {"alerts": [1]} and box.get(ids[1])["state"] == "failed"
    assert box.requeue_running() == 3  # a restart gives back what it left running
    assert [j["id"] for j in box.claim()] == ids[2:]
    assert box.counts() == {"done": 1, "failed": 1, "running": 3}


def test_callbacks_retry_dead_letter_and_replay(box):
    a, _ = box.accept("s", "generic", b"{}", "s/a")
    b, _ = box.accept("s", "generic", b"{}", "s/b")
    box.claim()
    box.finish(a, "done", {"alerts": ["A"]}, deliver=True)
    box.finish(b, "done", {"alerts": ["B"]}, deliver=True)
    due = box.due_deliveries()
    assert {d["id"] for d in due} == {a, b} and all(d["attempts"] == 0 for d in due)
    assert '"A"' in next(d["result"] for d in due if d["id"] == a)
    box.delivered(a, 1)
    box.retry_later(b, 1, time.time() + 3600, "HTTP 503", dead=False)
    assert box.due_deliveries() == []  # b waits for its backoff
    box.retry_later(b, 8, 0, "HTTP 410", dead=True)
    assert box.delivery_counts() == {"delivered": 1, "dead": 1}
    (dead,) = box.dead_letters()
    assert dead["id"] == b and dead["attempts"] == 8 and dead["last_error"] == "HTTP 410"
    assert box.replay("nope") == 0 and box.replay(b) == 1 and box.replay() == 0
    assert [d["id"] for d in box.due_deliveries()] == [b]
    assert box.get(b)["attempts"] == 0


def test_prune_keeps_pending_work(box):
    ids = {n: box.accept("s", "generic", b"{}", f"s/{n}")[0] for n in ("done", "dead", "queued")}
    box.claim()
    box.requeue_running()
    assert [j["id"] for j in box.claim(limit=2)] == [ids["done"], ids["dead"]]
    box.finish(ids["done"], "done", {})
    box.finish(ids["dead"], "done", {}, deliver=True)
    box.retry_later(ids["dead"], 3, 0, "gone", dead=True)
    assert box.prune(time.time() + 1, batch=1) == 1
    assert box.get(ids["done"]) is None and box.get(ids["dead"]) and box.get(ids["queued"])
    assert box.accept("s", "generic", b"{}", "s/done")[1] is True  # its key went with it


# -- several replicas on one PostgreSQL database -----------------------------------------------


def test_replicas_claim_each_job_once(pg_database):
    seed = open_outbox(pg_database)
    for i in range(300):
        seed.accept("s", "generic", b"{}", f"s/{i}")
    boxes = [open_outbox(pg_database) for _ in range(4)]
    claimed: List[List[str]] = [[] for _ in boxes]
    start = threading.Barrier(len(boxes))

    def drain(n: int, b: Outbox) -> None:
        start.wait()
        while True:
            jobs = b.claim(limit=7)
            if not jobs:
                return
            claimed[n] += [j["id"] for j in jobs]

    threads = [threading.Thread(target=drain, args=(n, b)) for n, b in enumerate(boxes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [jid for ids in claimed for jid in ids]
    assert len(every) == len(set(every)) == 300
    assert sum(1 for ids in claimed if ids) >= 2  # they really worked side by side
    # a clean shutdown gives back only its own jobs
    assert boxes[0].requeue_running() == len(claimed[0])
    assert seed.counts() == {"queued": len(claimed[0]), "running": 300 - len(claimed[0])}
    for b in [seed, *boxes]:
        b.close()


def test_a_killed_replicas_work_is_taken_over_after_its_lease(pg_database):
    dying = open_outbox(pg_database, lease=0.5)
    survivor = open_outbox(pg_database, lease=0.5)
    try:
        jid, _ = dying.accept("s", "generic", b"{}", "s/1")
        cb, _ = dying.accept("s", "generic", b"{}", "s/2")
        assert [j["id"] for j in dying.claim()] == [jid, cb]
        dying.finish(cb, "done", {}, deliver=True)
        assert [d["id"] for d in dying.due_deliveries()] == [cb]  # sending when it "dies"
        assert survivor.claim() == [] and survivor.due_deliveries() == []  # leased
        assert survivor.requeue_running() == 0  # never takes another replica's jobs at start
        time.sleep(0.7)
        assert [j["id"] for j in survivor.claim()] == [jid]
        assert [d["id"] for d in survivor.due_deliveries()] == [cb]
        assert dying.claim() == [] and dying.due_deliveries() == []
    finally:
        dying.close()
        survivor.close()


def test_keys_and_ids_with_nul_characters(box):
    """Idempotency keys come from senders (PostgreSQL text cannot hold NUL): stored one to
    one, so a key with NUL and its look-alike spelled with a backslash stay two jobs."""
    a, new = box.accept("s", "generic", b"{}", "s/a\x00b")
    assert new and box.accept("s", "generic", b"{}", "s/a\x00b") == (a, False)
    b, new = box.accept("s", "generic", b"{}", "s/a\\0b")
    assert new and b != a
    assert box.get("\x00") is None and box.replay("\x00") == 0


def test_one_job_key_for_every_instance(target):
    a, b = open_outbox(target), open_outbox(target)
    try:
        key = a.job_key()
        assert len(key) == 32 and b.job_key() == key == a.job_key()
    finally:
        a.close()
        b.close()


def test_a_retried_job_waits_its_turn_then_finishes_with_its_callback_due(box):
    first = box.accept("s", "generic", b"{}", "s/a")[0]
    second = box.accept("s", "generic", b"{}", "s/b")[0]
    assert [j["id"] for j in box.claim(limit=1)] == [first]
    box.retry_job(first, time.time() + 0.3)  # a transient failure: behind the queue
    assert [j["id"] for j in box.claim(limit=5)] == [second]  # not yet due
    time.sleep(0.35)
    assert [j["id"] for j in box.claim(limit=5)] == [first]
    box.finish(first, "done", {"ok": True}, deliver=True)
    assert [d["id"] for d in box.due_deliveries()] == [first]  # due now, not at the retry time
