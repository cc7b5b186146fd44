"""The callback loop: jobs whose enriched alerts are due at their source's callback URL are sent
(delivery.py signs and sends one), retried with backoff, then dead-lettered."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict

import aiohttp

from . import delivery
from .config import WebhookConfig
from .outbox import Outbox

log = logging.getLogger(__name__)


async def deliver_loop(outbox: Outbox, cfg: WebhookConfig) -> None:
    """Send due callbacks; failures are retried with backoff, then dead-lettered."""
    sessions = {True: delivery.session(True), False: delivery.session(False)}
    try:
        while True:
            due = outbox.due_deliveries()
            for job in due:
                try:
                    await _deliver_one(outbox, cfg, sessions, job)
                except Exception as exc:  # a bug: one bad job must not stop every callback
                    log.exception("callback for job %s failed unexpectedly", job["id"])
                    src = cfg.sources.get(job["source"])
                    attempts = job["attempts"] + 1
                    dead = src is None or attempts >= src.max_attempts
                    when = time.time() + (delivery.backoff(src, attempts) if src else 0)
                    outbox.retry_later(job["id"], attempts, when, repr(exc), dead)
            await asyncio.sleep(0.05 if due else 0.25)
    finally:
        for s in sessions.values():
            await s.close()


async def _deliver_one(
    outbox: Outbox,
    cfg: WebhookConfig,
    sessions: Dict[bool, aiohttp.ClientSession],
    job: Dict[str, Any],
) -> None:
    src = cfg.sources.get(job["source"])
    attempts = job["attempts"] + 1
    if src is None or not src.callback_url:
        outbox.retry_later(job["id"], attempts, 0, "no callback", True)
        return
    ok, error = await delivery.deliver(
        sessions[src.allow_private], src, job["id"], (job["result"] or "{}").encode()
    )
    if ok:
        outbox.delivered(job["id"], attempts)
        return
    dead = attempts >= src.max_attempts
    when = time.time() + delivery.backoff(src, attempts)
    outbox.retry_later(job["id"], attempts, when, error, dead)
    if dead:
        log.warning("callback for job %s dead-lettered: %s", job["id"], error)
