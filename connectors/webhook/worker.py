"""The job worker: alerts accepted without ?wait are claimed from the outbox, enriched one job at
a time (accepting comes first), and finished, retried later or marked failed; finished jobs
older than keep_days are pruned when idle."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Dict

from connectors.core.gateway import CredentialsRejected

from . import payload
from .receiver import Receiver

log = logging.getLogger(__name__)
JOB_TRIES = 3  # transient errors (disk, database) before a job is marked failed
JOB_RETRY = 2.0  # seconds before such a job is tried again, times the tries so far
# What may pass: anything else a job raises is a bug its alert triggers, which fails alike on
# every try, so the job is marked failed at once instead of holding the queue.
TRANSIENT = (OSError, sqlite3.OperationalError, asyncio.TimeoutError, MemoryError)
PRUNE_EVERY = 3600.0  # seconds between clean-ups of old finished jobs (the first one at start)
CREDENTIALS_RETRY = 30.0  # seconds between tries while VirusTotal rejects the API key


class Worker:
    """Runs beside the receiver it is given, on its outbox, configuration and events."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.outbox, self.cfg = receiver.outbox, receiver.cfg
        self.wake, self.stopping = receiver.wake, receiver.stopping
        self.enrich_alert = receiver.enrich_alert
        self.last_prune = -PRUNE_EVERY  # the first idle moment cleans up
        self.job_failures: Dict[str, int] = {}  # unexpected errors per job, this process

    def _prune_now_and_then(self) -> None:
        """When idle, at most hourly: finished jobs older than keep_days go."""
        now = time.monotonic()
        if now - self.last_prune < PRUNE_EVERY:
            return
        self.last_prune = now
        gone = self.outbox.prune(time.time() - self.cfg.keep_days * 86400)
        if gone:
            log.info("event=jobs_pruned count=%d keep_days=%g", gone, self.cfg.keep_days)

    async def run(self) -> None:
        self.outbox.requeue_running()  # left running by a crash: do them again
        while not self.stopping.is_set():
            jobs = self.outbox.claim()
            if not jobs:
                self._prune_now_and_then()
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            for job in jobs:
                if self.stopping.is_set():
                    break  # claimed but not started: re-queued at shutdown
                # Accepting comes first: while alerts are arriving, enrich one job per gap
                # (at most 20 ms of waiting per job, so a steady stream never starves the queue).
                for _ in range(4):
                    if time.monotonic() - self.receiver.last_request > 0.002:
                        break
                    await asyncio.sleep(0.005)
                try:
                    docs = payload.decode(job["body"])
                    src = self.cfg.sources.get(job["source"])
                    output = src.output if src else "vtconnect"
                    alerts = [
                        await self.enrich_alert(job["format"], d, 300.0, output) for d in docs
                    ]
                    self.outbox.finish(
                        job["id"],
                        "done",
                        {"alerts": alerts},
                        deliver=bool(src and src.callback_url),
                    )
                except payload.PayloadError as exc:
                    self.outbox.finish(job["id"], "failed", {"error": str(exc)})
                except asyncio.CancelledError:
                    raise  # shutdown: the job stays "running" and is re-queued at start
                except CredentialsRejected as exc:
                    # Every job would fail alike: keep them all queued, try again in a while.
                    log.error("VirusTotal rejected the API key (%s); jobs stay queued", exc.code)
                    self.outbox.requeue_running()
                    try:
                        await asyncio.wait_for(self.stopping.wait(), CREDENTIALS_RETRY)
                    except asyncio.TimeoutError:
                        pass
                    break
                except TRANSIENT as exc:  # the disk or the database: the job may succeed later
                    tries = self.job_failures[job["id"]] = self.job_failures.get(job["id"], 0) + 1
                    if tries >= JOB_TRIES:  # ... but is not retried forever
                        log.exception("job %s failed %d times; giving up", job["id"], tries)
                        self.outbox.finish(job["id"], "failed", {"error": "internal error"})
                        del self.job_failures[job["id"]]
                    else:  # later, behind the jobs queued after it: never a blocked queue head
                        log.warning("job %s failed (%r); retried later", job["id"], exc)
                        self.outbox.retry_job(job["id"], time.time() + JOB_RETRY * tries)
                except Exception:  # a bug this alert triggers: it fails alike on every try
                    log.exception("job %s failed; marked failed", job["id"])
                    self.outbox.finish(job["id"], "failed", {"error": "internal error"})
