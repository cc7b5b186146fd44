"""Republishes the core's verdicts as STIX Indicators: a malicious or suspicious verdict from any
connector (a Splunk search, a webhook alert, the CLI) reaches the firewalls polling TAXII; a later
harmless verdict for a published indicator publishes a revoked version."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, AsyncIterator, Callable, Dict, List

from connectors.core import stix
from connectors.core.enricher import Enricher
from connectors.core.verdict import Enrichment, Verdict

from .config import TaxiiConfig
from .store import Store

log = logging.getLogger(__name__)
CURSOR = "publisher:verdict_log"
GROUP = {"md5": "file", "sha1": "file", "sha256": "file", "ipv4": "ip", "ipv6": "ip"}


async def poll_sources(
    enricher: Enricher, store: Store, cfg: TaxiiConfig, due: Dict[int, float]
) -> int:
    """Poll the VirusTotal sources whose time has come; returns objects stored."""
    from connectors.core.quota import Priority

    from . import sources

    stored = 0
    for i, src in enumerate(cfg.sources):
        now = time.time()
        if due.get(i, 0.0) > now:
            continue
        due[i] = now + src["every"]

        async def acquire() -> bool:  # background work: never waits long for the budget
            return await enricher.governor.acquire(Priority.BACKGROUND, time.time() + 5)

        objects = await sources.poll(
            enricher.gateway, acquire, src, enricher.settings.policy, cfg.tlp
        )
        if objects:
            stored += sum(
                store.add(src["collection"], [stix.PRODUCER, stix.marking(cfg.tlp), *objects])
            )
    return stored


def publish_once(enricher: Enricher, store: Store, cfg: TaxiiConfig, batch: int = 1000) -> int:
    """One pass over new verdict log rows; returns how many objects were stored."""
    cursor = int(store.get_state(CURSOR, "0"))
    rows = enricher.cache.log_after(cursor, limit=batch)
    if not rows:
        return 0
    now = time.time()
    stored = 0
    for coll in cfg.collections:
        wanted = set(coll.publish)
        if not wanted:
            continue
        objects: List[Dict[str, Any]] = []
        for _, rec in rows:
            if coll.kinds and GROUP.get(rec.kind, rec.kind) not in coll.kinds:
                continue
            enr = Enrichment(
                value=rec.value,
                kind=rec.kind,
                verdict=Verdict(rec.verdict),
                score=rec.score,
                reason=rec.reason,
                normalized=rec.value,
                vt_id=rec.key.split(":", 1)[1],
                link=_link(rec.kind, rec.key, rec.value),
            )
            if rec.verdict in wanted:
                objects.append(stix.indicator(enr, now, cfg.tlp))
            elif (
                rec.verdict == "harmless"
                and store.query(
                    coll.id, limit=1, ids=[stix.indicator_id(rec.kind, rec.value)]
                ).objects
            ):
                objects.append(stix.indicator(enr, now, cfg.tlp, revoked=True))
        if objects:
            objects = [stix.PRODUCER, stix.marking(cfg.tlp), *objects]
            stored += sum(store.add(coll.id, objects))
    store.set_state(CURSOR, str(rows[-1][0]))
    return stored


def _link(kind: str, key: str, value: str) -> str:
    """The VirusTotal GUI link (URLs are addressed there by the SHA-256 of the URL)."""
    if kind == "url":
        return f"https://www.virustotal.com/gui/url/{hashlib.sha256(value.encode()).hexdigest()}"
    gui = {"domain": "domain", "ipv4": "ip-address", "ipv6": "ip-address"}.get(kind, "file")
    return f"https://www.virustotal.com/gui/{gui}/{key.split(':', 1)[1]}"


def publisher_task(
    enricher: Enricher, store: Store, cfg: TaxiiConfig
) -> Callable[[Any], AsyncIterator[None]]:
    async def ctx(app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            due: Dict[int, float] = {}
            while True:
                try:
                    publish_once(enricher, store, cfg)
                    await poll_sources(enricher, store, cfg, due)
                except Exception:  # keep publishing after a bad row or a failed poll; say so
                    log.exception("publishing failed")
                await asyncio.sleep(cfg.poll_seconds)

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx
