"""Republishes the core's verdicts as STIX Indicators: a malicious or suspicious verdict from any
connector (a Splunk search, a webhook alert, the CLI) reaches the firewalls polling TAXII; a later
harmless verdict for a published indicator publishes a revoked version. The [lists] section
decides first: an ignored value is never published (a live indicator for it is revoked), a
forced verdict replaces the logged one.

Replicas sharing one PostgreSQL database ([core] database) run the publisher once: it runs where
a session-level advisory lock is held (`RunnerLock`), on a connection of its own that also
LISTENs on `vtconnect_verdicts`, the channel the core's PostgreSQL verdict log NOTIFYs on every
insert, so a new verdict is published at once rather than at the next poll. When that session
ends (the replica stops or is killed, the connection drops) PostgreSQL releases the lock and a
replica standing by takes over at its next try. The cursor moves in the same transaction as the
objects (`store.publish`), so even a moment with two runners publishes each verdict once. On
SQLite the server polls every `poll_seconds`, as one host's processes always did."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import replace
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

from connectors.core import database, stix
from connectors.core.enricher import Enricher
from connectors.core.lists import Lists
from connectors.core.report import Report
from connectors.core.verdict import Enrichment, Verdict

from .config import TaxiiConfig
from .store import ObjectStore
from .validate import repaired

log = logging.getLogger(__name__)
# Which replica runs the publisher, logged at INFO whatever -v says (a rare, telling event).
role_log = logging.getLogger("vtconnect.publisher")
role_log.setLevel(logging.INFO)
CURSOR = "publisher:verdict_log"
GROUP = {"md5": "file", "sha1": "file", "sha256": "file", "ipv4": "ip", "ipv6": "ip"}


async def poll_sources(
    enricher: Enricher, store: ObjectStore, cfg: TaxiiConfig, due: Dict[int, float]
) -> int:
    """Poll the VirusTotal sources whose time has come; returns objects stored."""
    from connectors.core.gateway import Slot
    from connectors.core.quota import Priority

    from . import sources

    stored = 0
    for i, src in enumerate(cfg.sources):
        now = time.time()
        if due.get(i, 0.0) > now:
            continue
        due[i] = now + src["every"]

        def slot() -> Slot:  # background work: never waits long for the budget
            return Slot(Priority.BACKGROUND, time.time() + 5, "taxii")

        objects = await sources.poll(
            enricher.gateway, slot, src, enricher.settings.policy, cfg.tlp, enricher.lists
        )
        objects = _not_emulated(objects, cfg.collection(src["collection"]))
        if objects:
            objs = repaired([stix.PRODUCER, stix.marking(cfg.tlp), *objects])
            stored += sum(store.add(src["collection"], objs))
    return stored


def publish_once(
    enricher: Enricher, store: ObjectStore, cfg: TaxiiConfig, batch: int = 1000
) -> int:
    """One pass over new verdict log rows; returns how many objects were stored. The cached
    report (when the cache still has it) adds labels, first_seen and the Malware SDO."""
    lists = getattr(enricher, "lists", None)  # the core's [lists]: they decide first
    revoked = revoke_listed(lists, store, cfg) if lists is not None else 0
    seen = store.get_state(CURSOR, "")
    rows = enricher.cache.log_after(int(seen or 0), limit=batch)
    if not rows:
        return revoked
    now = time.time()
    # A later verdict for a value supersedes; rows we cannot express as a pattern are skipped.
    latest = {
        rec.key: rec for _, rec in rows if rec.kind in stix.PATTERN_PATH and rec.verdict in VERDICTS
    }
    enrichments = {key: _listed(lists, _enrichment(enricher, rec)) for key, rec in latest.items()}
    batches: Dict[str, List[Dict[str, Any]]] = {}
    for coll in cfg.collections:
        wanted = set(coll.publish)
        if not wanted:
            continue
        objects: List[Dict[str, Any]] = []
        for key, rec in latest.items():
            if coll.kinds and GROUP.get(rec.kind, rec.kind) not in coll.kinds:
                continue
            enr = enrichments[key]
            verdict = enr.verdict.value
            if verdict in wanted and verdict != "skipped":
                made = stix.objects_for([enr], now, cfg.tlp, [enr.verdict])
                objects += [o for o in made if o["type"] not in SHARED]
            elif verdict in ("harmless", "skipped") and _published(
                store, coll.id, rec.kind, rec.value
            ):
                objects.append(stix.indicator(enr, now, cfg.tlp, revoked=True))
        objects = _not_emulated(objects, coll)
        if objects:
            batches[coll.id] = repaired([stix.PRODUCER, stix.marking(cfg.tlp), *objects])
    # Objects and cursor in one transaction: a crash never loses or repeats a verdict, and a
    # second server process that got here first makes this pass a no-op.
    return (store.publish(batches, CURSOR, seen, str(rows[-1][0])) or 0) + revoked


def _not_emulated(objects: List[Dict[str, Any]], coll: Any) -> List[Dict[str, Any]]:
    """Emulator answers are test data: they go only to collections marked `test = true`, never
    onto a feed that firewalls enforce. Objects that refer to a dropped indicator go with it."""
    if coll is None or coll.test:
        return objects
    dropped = {o["id"] for o in objects if stix.is_emulated(o)}
    if not dropped:
        return objects
    log.warning(
        "not publishing %d object(s) made from the vtconnect emulator's answers to %r: "
        "it is not marked test = true", len(dropped), coll.title,
    )  # fmt: skip
    refers = ("object_refs", "source_ref", "target_ref")
    return [o for o in objects if o["id"] not in dropped and not any(
        ref in dropped for key in refers for ref in _refs(o.get(key)))]  # fmt: skip


def _refs(value: Any) -> List[str]:
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []


LISTS_STATE = "publisher:lists"


def revoke_listed(lists: Lists, store: ObjectStore, cfg: TaxiiConfig, page: int = 500) -> int:
    """When the [lists] changed since the last pass: revoke the live indicators this publisher
    put out for values now ignored or forced harmless. Returns the versions stored."""
    from .client import observables

    stamp = hashlib.sha256(repr(lists.settings).encode()).hexdigest()
    if store.get_state(LISTS_STATE, "") == stamp:
        return 0
    stored = 0
    now = stix.timestamp(time.time())
    for coll in cfg.collections:
        if not coll.publish:
            continue
        revoke: List[Dict[str, Any]] = []
        token = None
        while True:
            got = store.query(coll.id, limit=page, types=["indicator"], next_token=token)
            for row in got.objects:
                body = json.loads(row["body"])
                if body.get("revoked") or body.get("created_by_ref") != stix.PRODUCER["id"]:
                    continue
                rule = _rule_for(lists, observables(body))
                if rule is not None and rule.verdict in (Verdict.SKIPPED, Verdict.HARMLESS):
                    revoke.append(dict(body, revoked=True, modified=_after(now, body),
                                       description=rule.reason))  # fmt: skip
            if not got.more:
                break
            token = got.next
        if revoke:
            stored += sum(store.add(coll.id, revoke))
    store.set_state(LISTS_STATE, stamp)
    return stored


def _after(stamp: str, body: Dict[str, Any]) -> str:
    """`stamp`, or a millisecond after the version it replaces when that one is as new (a
    revocation in the same millisecond would be the same version, and not stored)."""
    import datetime as _dt

    last = str(body.get("modified", ""))
    if stamp > last:
        return stamp
    try:
        when = _dt.datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return stamp
    return stix.timestamp(when + 0.001)


def _rule_for(lists: Lists, pairs: List[Any]) -> Any:
    for kind, value in pairs:
        rule = lists.match_value(kind, value)
        if rule is not None:
            return rule
    return None


SHARED = ("identity", "marking-definition")
VERDICTS = {v.value for v in Verdict}


def _enrichment(enricher: Enricher, rec: Any) -> Enrichment:
    report = None
    try:
        entry = enricher.cache.get(rec.key)
        if entry is not None and entry.report:
            report = Report.from_dict(entry.report)
    except Exception:  # an old or odd cache row: publish without the report's details
        log.debug("no usable cached report for %s", rec.key, exc_info=True)
    return Enrichment(
        value=rec.value,
        kind=rec.kind,
        verdict=Verdict(rec.verdict),
        score=rec.score,
        reason=rec.reason,
        normalized=rec.value,
        vt_id=rec.key.split(":", 1)[1],
        link=_link(rec.kind, rec.key, rec.value),
        report=report,
    )


def _listed(lists: Optional[Lists], enr: Enrichment) -> Enrichment:
    """The enrichment with the verdict a [lists] rule gives the value, if one matches."""
    rule = lists.match_value(enr.kind, enr.value, enr.report) if lists else None
    if rule is None:
        return enr
    return replace(enr, verdict=rule.verdict, score=rule.score, reason=rule.reason)


def _published(store: ObjectStore, collection: str, kind: str, value: str) -> bool:
    """Whether the collection holds a live (not yet revoked) indicator for this value."""
    page = store.query(collection, limit=1, ids=[stix.indicator_id(kind, value)])
    return bool(page.objects) and not json.loads(page.objects[0]["body"]).get("revoked")


def _link(kind: str, key: str, value: str) -> str:
    """The VirusTotal GUI link (URLs are addressed there by the SHA-256 of the URL)."""
    if kind == "url":
        return f"https://www.virustotal.com/gui/url/{hashlib.sha256(value.encode()).hexdigest()}"
    gui = {"domain": "domain", "ipv4": "ip-address", "ipv6": "ip-address"}.get(kind, "file")
    return f"https://www.virustotal.com/gui/{gui}/{key.split(':', 1)[1]}"


CHANNEL = "vtconnect_verdicts"  # NOTIFYed by the core's PostgreSQL verdict log on each insert
LOCK_PUBLISHER = 0x7674_0103  # advisory lock class: (this, hashtext(current_schema()))
STANDBY_SECONDS = 1.0  # how often a replica standing by tries to take the publisher over
# A session on a host that vanished (no FIN, no RST) ends, and its lock with it, after about
# idle + interval * count seconds, or tcp_user_timeout when data (a NOTIFY) waits unacknowledged;
# the same on the client side, so a cut-off runner stops. Unix sockets ignore them.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
             "keepalives_count": 3, "tcp_user_timeout": 25000}  # fmt: skip
SERVER_KEEPALIVE = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5",
                    "SET tcp_keepalives_count = 3", "SET tcp_user_timeout = 25000")  # fmt: skip


class RunnerLock:
    """The publisher's single-runner lock among the replicas sharing one PostgreSQL database:
    `pg_try_advisory_lock` on a session of its own (keyed by the schema the stores use, so two
    deployments in one database do not exclude each other), which LISTENs for new verdicts
    while it holds the lock. The session's application_name names the host and process, so
    `pg_stat_activity` shows which replica runs the publisher."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.errors = (database.driver_error(), OSError)
        self.conn: Any = None
        self.held = False
        self.role = ""  # "running", "standby" or "lost": logged when it changes
        self.name = f"vtconnect publisher {socket.gethostname()}:{os.getpid()}"

    async def acquire(self) -> bool:
        """True when this replica holds the lock (now or already); False when another does."""
        if self.held:
            return True
        if self.conn is None or self.conn.closed:
            self.conn = await database.connect_async(
                self.url, application_name=self.name[:63], **KEEPALIVE
            )
            for statement in SERVER_KEEPALIVE:
                await self.conn.execute(statement)
        cur = await self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (LOCK_PUBLISHER,)
        )
        row = await cur.fetchone()
        if not (row and row[0]):
            self._say("standby", "publisher standing by: another replica holds its lock")
            return False
        await self.conn.execute(f"LISTEN {CHANNEL}")
        self.held = True
        self._say("running", "publisher running on this replica (it holds the database lock)")
        return True

    async def wait(self, timeout: float) -> bool:
        """Until a verdict is NOTIFYed or `timeout` passes; True when woken. A burst of
        notifications wakes once: the pass that follows reads every row they announce."""
        woke = False
        async for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            woke = True
        if woke:
            async for _ in self.conn.notifies(timeout=0):
                pass
        return woke

    async def lost(self, exc: BaseException) -> None:
        """The session failed (the database restarted, the network dropped): the lock went
        with it. Close what is left; `acquire` starts a new session."""
        was_running = self.held
        self.held = False
        await self.close()
        text = " ".join(str(exc).split()) or type(exc).__name__
        if was_running:
            self._say("lost", f"publisher stopped: its database session ended ({text})",
                      logging.WARNING)  # fmt: skip
        else:
            self._say("lost", f"publisher cannot reach the database ({text})", logging.WARNING)

    async def close(self) -> None:
        conn, self.conn, self.held = self.conn, None, False
        if conn is not None and not conn.closed:
            try:
                await conn.close()  # the session ends: the lock is released now
            except self.errors:
                pass

    def _say(self, role: str, message: str, level: int = logging.INFO) -> None:
        if role != self.role:
            self.role = role
            role_log.log(level, message)


async def _one_pass(
    enricher: Enricher,
    store: ObjectStore,
    cfg: TaxiiConfig,
    due: Dict[int, float],
    backlog: bool = False,
) -> bool:
    """One pass; with `backlog`, True when it moved the cursor and the log holds more rows."""
    try:
        before = store.get_state(CURSOR, "") if backlog else ""
        publish_once(enricher, store, cfg)
        await poll_sources(enricher, store, cfg, due)
        if not backlog:
            return False
        now = store.get_state(CURSOR, "")
        return now != before and bool(enricher.cache.log_after(int(now or 0), limit=1))
    except Exception:  # keep publishing after a bad row or a failed poll; say so
        log.exception("publishing failed")
        return False


async def run_alone(enricher: Enricher, store: ObjectStore, cfg: TaxiiConfig) -> None:
    """SQLite: every server process of the host polls; the cursor keeps passes apart."""
    due: Dict[int, float] = {}
    while True:
        await _one_pass(enricher, store, cfg, due)
        await asyncio.sleep(cfg.poll_seconds)


async def run_replicated(
    url: str, enricher: Enricher, store: ObjectStore, cfg: TaxiiConfig
) -> None:
    """PostgreSQL: publish only while holding the RunnerLock; a pass after every NOTIFY, at
    least every `poll_seconds` (sources, and verdicts logged without a notification), and at
    once again while a pass leaves a backlog (1,000 log rows a pass)."""
    due: Dict[int, float] = {}
    lock = RunnerLock(url)
    try:
        while True:
            try:
                if not await lock.acquire():
                    await asyncio.sleep(STANDBY_SECONDS)
                    continue
                if await _one_pass(enricher, store, cfg, due, backlog=True):
                    # more rows than one pass reads (a takeover, a burst): go on at once
                    await asyncio.sleep(0)
                    continue
                await lock.wait(cfg.poll_seconds)
            except lock.errors as exc:
                await lock.lost(exc)
                await asyncio.sleep(STANDBY_SECONDS)
    finally:
        await lock.close()


def publisher_task(
    enricher: Enricher, store: ObjectStore, cfg: TaxiiConfig
) -> Callable[[Any], AsyncIterator[None]]:
    async def ctx(app: Any) -> AsyncIterator[None]:
        url = enricher.settings.database
        run = (run_replicated(url, enricher, store, cfg) if database.is_postgres(url)
               else run_alone(enricher, store, cfg))  # fmt: skip
        task = asyncio.get_running_loop().create_task(run, name="taxii-publisher")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx
