"""The enrichment pipeline every connector calls: values in, one Enrichment per value out.

Per call: dedupe, classify and filter, answer from the cache, then ask VirusTotal for the rest
through the quota governor with bounded concurrency, apply the policy, store. Nothing here blocks
past the caller's deadline: what the budget or the clock does not allow comes back as `quota`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import policy, relationships
from .cache import Cache, CacheEntry, LogRecord
from .clock import Clock
from .config import PolicySettings, Settings
from .gateway import (
    BadAnswer,
    CredentialsRejected,
    Gateway,
    GatewayError,
    NotFound,
    RateLimited,
)
from .observable import InvalidObservable, Kind, Observable, parse
from .privacy import skip_reason
from .quota import Priority, QuotaGovernor
from .report import Report
from .verdict import CACHEABLE, Enrichment, Verdict

log = logging.getLogger(__name__)

# An in-process memo answers repeated values without parsing them again; it trusts an entry
# for at most this long so that writes by other processes (a rescan, a purge) are seen.
MEMO_SECONDS = 60.0
# One value, one call: an asker that finds another process's lease on a value polls the cache
# for its answer this often. A lease outlives a slow call; a holder that dies frees it at once
# (its pid is gone), one that hangs after LEASE_SECONDS.
LEASE_SECONDS = 30.0
LEASE_POLL = 0.05
KEEP_EVERY = 0.02  # seconds a fetched answer may wait to be stored with others
KEEP_BATCH = 64


class _Abandoned(Exception):
    """The asker another one waited for got no answer it can share (a deadline, the budget):
    the waiter asks itself."""


class Enricher:
    """Shared by every connector in a process. Async API plus `enrich_sync` for callers
    without an event loop (the Splunk command)."""

    def __init__(
        self,
        settings: Settings,
        *,
        connector: str = "cli",
        cache: Optional[Cache] = None,
        governor: Optional[QuotaGovernor] = None,
        gateway: Optional[Gateway] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.clock = clock or Clock()
        self.cache = cache or Cache(settings.cache_path, settings.cache, self.clock)
        per_minute, per_day = settings.quota.limits()
        self.governor = governor or QuotaGovernor(
            settings.quota_path, settings.virustotal.api_key.get(), per_minute, per_day, self.clock
        )
        self._gateway = gateway
        # kind option -> raw value -> (trusted until, cached Enrichment)
        self._memos: Dict[Optional[str], Dict[str, Tuple[float, Enrichment]]] = {}
        # canonical cache key -> the answer being fetched for it in this process
        self._inflight: Dict[str, asyncio.Future[Enrichment]] = {}
        self._relationships = relationships.per_collection(settings.virustotal.relationships)
        # fetched answers not stored yet, and our leases to drop with them (see _keep)
        self._unsaved: List[Tuple[CacheEntry, Iterable[str]]] = []
        self._unreleased: List[str] = []
        self._flush_timer: Optional[asyncio.TimerHandle] = None

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = Gateway(self.settings.virustotal)
        return self._gateway

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()

    def close(self) -> None:
        self.cache.close()

    # -- public API ----------------------------------------------------------------------
    def enrich_sync(self, values: Sequence[str], **kwargs: object) -> List[Enrichment]:
        """For callers with no running event loop; raises RuntimeError inside one."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("enrich_sync() inside a running event loop: await enrich()")

        async def run() -> List[Enrichment]:
            try:
                return await self.enrich(values, **kwargs)  # type: ignore[arg-type]
            finally:
                await self.aclose()

        return asyncio.run(run())

    async def enrich(
        self,
        values: Sequence[str],
        *,
        kind: Optional[str] = None,
        priority: Priority = Priority.INTERACTIVE,
        deadline: Optional[float] = None,
        use_cache: bool = True,
        rescan_after_days: Optional[int] = None,
        max_lookups: Optional[int] = None,
        connector: Optional[str] = None,
    ) -> List[Enrichment]:
        """One Enrichment per input value, in input order. Equal inputs share one (read-only)
        Enrichment. `deadline` is in seconds from now; `max_lookups` caps API calls."""
        connector = connector or self.connector
        now = self.clock.now()
        kind = None if kind in (None, "", "auto") else kind
        memo = self._memos.setdefault(kind, {}) if use_cache else {}
        days = (
            self.settings.policy.rescan_after_days
            if rescan_after_days is None
            else rescan_after_days
        )
        rescan_before = now - days * 86400 if days else 0.0  # reports analysed before are stale
        found: Dict[str, Optional[Enrichment]] = {}
        todo: List[str] = []
        for value in values:
            if value in found:
                continue
            hit = memo.get(value)
            if (
                hit is not None
                and hit[0] > now
                and (not rescan_before or _fresh(hit[1], rescan_before))
            ):
                found[value] = hit[1]
            else:
                found[value] = None
                todo.append(value)
        if todo:
            fresh = await self._resolve(
                todo, kind, priority, deadline, use_cache, rescan_after_days, max_lookups, connector
            )
            for value, enr in fresh.items():
                found[value] = enr
        return [found[v] for v in values]  # type: ignore[misc]

    # -- pipeline ------------------------------------------------------------------------
    async def _resolve(
        self,
        values: List[str],
        kind: Optional[str],
        priority: Priority,
        deadline: Optional[float],
        use_cache: bool,
        rescan_after_days: Optional[int],
        max_lookups: Optional[int],
        connector: str,
    ) -> Dict[str, Enrichment]:
        out: Dict[str, Enrichment] = {}
        by_key: Dict[str, Tuple[Observable, List[str]]] = {}
        for value in values:
            try:
                obs = parse(value, kind)
            except InvalidObservable as exc:
                out[value] = Enrichment(
                    value, "", Verdict.SKIPPED, reason=self._invalid_reason(value, exc)
                )
                continue
            why = skip_reason(obs, self.settings.privacy)
            if why:
                out[value] = _from_obs(value, obs, Verdict.SKIPPED, reason=why)
                continue
            by_key.setdefault(obs.cache_key, (obs, []))[1].append(value)

        rescan_days = (
            self.settings.policy.rescan_after_days
            if rescan_after_days is None
            else rescan_after_days
        )
        answers: Dict[str, Enrichment] = {}
        entries = self.cache.get_many(by_key) if use_cache and by_key else {}
        now = self.clock.now()
        for key, entry in entries.items():
            answers[key] = self._from_entry(by_key[key][0], entry)
        hits = len(answers)

        missing = [by_key[k][0] for k in by_key if k not in answers]
        fetched = await self._fetch_all(missing, priority, deadline, max_lookups, share=use_cache)
        answers.update(fetched)
        # Cached or just fetched, a report analysed too long ago is stale; a report without an
        # analysis date (many domain/IP objects) has no known age and is never rescanned.
        stale: List[Tuple[str, Observable]] = []
        for key, enr in answers.items():
            if rescan_days and _too_old(enr.report, now, rescan_days):
                enr.stale = True
                stale.append((_canonical(key, enr.report), by_key[key][0]))
        if stale:
            calls = sum(1 for e in fetched.values() if not e.cached)
            await self._rescan(
                stale, rescan_days, priority, deadline, fetched_count=calls, max_lookups=max_lookups
            )

        self._store(by_key, fetched, answers, connector, now)
        self.cache.count_hit(connector, hits, len(missing))
        memo_until = now + MEMO_SECONDS
        for key, (_, raws) in by_key.items():
            enr = answers[key]
            for raw in raws:
                out[raw] = enr if raw == enr.value else replace(enr, value=raw)
        self._remember(kind, out, memo_until)
        return out

    async def _fetch_all(
        self,
        observables: List[Observable],
        priority: Priority,
        deadline: Optional[float],
        max_lookups: Optional[int],
        share: bool = True,
    ) -> Dict[str, Enrichment]:
        """Answers for values not in the cache; `share`: lease them host-wide (with the cache
        on), so that askers in other processes wait for this one's answer, and vice versa."""
        if not observables:
            return {}
        until = None if deadline is None else self.clock.now() + deadline
        limit = len(observables) if max_lookups is None else max(0, max_lookups)
        results: Dict[str, Enrichment] = {}
        for obs in observables[limit:]:
            results[obs.cache_key] = _from_obs(
                obs.value, obs, Verdict.QUOTA, reason=f"over this search's limit of {limit} lookups"
            )
        sem = asyncio.Semaphore(self.settings.virustotal.max_concurrency)
        fatal: List[CredentialsRejected] = []

        async def call(obs: Observable) -> Enrichment:
            async with sem:
                if fatal:
                    return _from_obs(obs.value, obs, Verdict.ERROR, reason="not looked up")
                return await self._fetch_one(obs, priority, until, fatal)

        # One value, one call: a value another enrich() of this process is fetching waits for
        # that answer; one another process leases waits for its cache entry (below).
        loop = asyncio.get_running_loop()
        chosen = observables[:limit]
        keys = self._shared_keys(chosen)
        leading: Dict[str, asyncio.Future[Enrichment]] = {}
        following: Dict[str, asyncio.Future[Enrichment]] = {}
        for obs in chosen:
            key = keys[obs.cache_key]
            fut = self._inflight.get(key)
            if fut is not None and fut.get_loop() is loop and not fut.done():
                following[obs.cache_key] = fut
            else:
                leading[obs.cache_key] = self._inflight[key] = loop.create_future()
        leased = (
            self.cache.take_leases([keys[k] for k in leading], LEASE_SECONDS)
            if share
            else {keys[k] for k in leading}
        )

        async def one(obs: Observable) -> None:
            key = keys[obs.cache_key]
            fut = leading.get(obs.cache_key)
            if fut is None:
                enr = await self._follow(obs, key, following[obs.cache_key], call, share)
            else:
                enr = await self._lead(obs, key, fut, key in leased, call, share)
            results[obs.cache_key] = enr

        tasks = [asyncio.ensure_future(one(o)) for o in chosen]
        # A holder waiting for a governor slot (public tier) keeps its leases alive.
        renewer = (
            asyncio.ensure_future(self._renew([keys[o.cache_key] for o in chosen], tasks))
            if share and leased
            else None
        )
        timeout = None if until is None else max(0.0, until - self.clock.now())
        try:
            done, pending = await asyncio.wait(tasks, timeout=timeout) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            if renewer is not None:
                renewer.cancel()
            self._flush()
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, asyncio.CancelledError):
                raise exc
        if fatal:
            raise fatal[0]
        for obs in chosen:
            if obs.cache_key not in results:
                results[obs.cache_key] = _from_obs(
                    obs.value,
                    obs,
                    Verdict.ERROR,
                    reason="no answer before the deadline",
                    error="deadline",
                )
        return results

    def _shared_keys(self, observables: List[Observable]) -> Dict[str, str]:
        """cache key -> the key askers share: the SHA-256 of a file whose MD5/SHA-1 is known."""
        keys = {o.cache_key: o.cache_key for o in observables}
        aliased = [o.cache_key for o in observables if o.kind in (Kind.MD5, Kind.SHA1)]
        if aliased:
            keys.update(self.cache.canonical(aliased))
        return keys

    async def _lead(
        self,
        obs: Observable,
        key: str,
        fut: asyncio.Future[Enrichment],
        leased: bool,
        call: Callable[[Observable], Awaitable[Enrichment]],
        share: bool,
    ) -> Enrichment:
        """Answer `key` for this process (its waiters get `fut`): from another process's call
        when that one holds the lease, else with our own call, stored before the lease goes."""
        stored = False
        try:
            while not leased:
                enr = await self._wait_for_holder(obs, key)
                if enr is not None:
                    break
                leased = key in self.cache.take_leases([key], LEASE_SECONDS)
            else:
                enr = await call(obs)
                self._keep(obs, enr, release=[key] if share else [])
                stored = True
        except BaseException:
            if not fut.done():
                fut.set_exception(_Abandoned())
                fut.exception()  # retrieved: nobody waiting is not an error
            raise
        finally:
            if leased and share and not stored:
                self.cache.release_leases([key])
            if self._inflight.get(key) is fut:
                del self._inflight[key]
        if enr.verdict == Verdict.QUOTA or enr.error == "deadline":
            fut.set_exception(_Abandoned())
            fut.exception()
        else:
            fut.set_result(enr)
        return enr

    async def _follow(
        self,
        obs: Observable,
        key: str,
        fut: asyncio.Future[Enrichment],
        call: Callable[[Observable], Awaitable[Enrichment]],
        share: bool,
    ) -> Enrichment:
        """Wait for the answer another enrich() of this process is fetching; ask ourselves when
        it gives up."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return _shared(obs, await asyncio.shield(fut), self.settings.policy)
            except _Abandoned:
                pass
            nxt = self._inflight.get(key)
            if nxt is not None and nxt.get_loop() is loop and not nxt.done():
                fut = nxt
                continue
            fut = self._inflight[key] = loop.create_future()
            leased = key in self.cache.take_leases([key], LEASE_SECONDS) if share else True
            return await self._lead(obs, key, fut, leased, call, share)

    async def _renew(self, keys: List[str], tasks: List[asyncio.Future[None]]) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            busy = [k for k, t in zip(keys, tasks) if not t.done()]
            if busy:
                self.cache.renew_leases(busy, LEASE_SECONDS)

    async def _wait_for_holder(self, obs: Observable, key: str) -> Optional[Enrichment]:
        """Another process leases `key`: its answer from the cache, or None once the lease is
        gone without one (an error is not cached) or its holder died. The caller's deadline
        cancels the wait."""
        while True:
            entry = self.cache.get_many([key]).get(key)
            if entry is not None:
                return self._from_entry(obs, entry)
            if not self.cache.lease_held(key):
                return None
            await asyncio.sleep(LEASE_POLL)

    async def _fetch_one(
        self,
        obs: Observable,
        priority: Priority,
        until: Optional[float],
        fatal: List[CredentialsRejected],
    ) -> Enrichment:
        while True:
            if not await self.governor.acquire(priority, until):
                return _from_obs(
                    obs.value,
                    obs,
                    Verdict.QUOTA,
                    reason="VirusTotal API budget spent; not looked up",
                )
            try:
                report = await self.gateway.fetch(obs, self._relationships[obs.kind.collection])
            except NotFound:
                return _from_obs(
                    obs.value, obs, Verdict.NOT_FOUND, score=0, reason=policy.NOT_FOUND.reason
                )
            except RateLimited as exc:
                # Never retry at once: the governor holds every caller until the cooldown ends,
                # or answers quota when that is past the deadline.
                self.governor.learn_429(exc.retry_after)
                log.warning("VirusTotal rate limit (%s); backing off", exc.code)
                continue
            except CredentialsRejected as exc:
                fatal.append(exc)
                raise
            except (BadAnswer, GatewayError) as exc:
                return _from_obs(
                    obs.value,
                    obs,
                    Verdict.ERROR,
                    reason=f"VirusTotal lookup failed: {exc}",
                    error=exc.code,
                )
            return self._from_report(obs, report, cached=False)

    async def _rescan(
        self,
        stale: List[Tuple[str, Observable]],
        every_days: float,
        priority: Priority,
        deadline: Optional[float],
        fetched_count: int,
        max_lookups: Optional[int],
    ) -> None:
        """Ask for reanalysis of reports older than rescan_after_days (one API call each), at
        most once per object per rescan_after_days on this host (recorded in the cache db)."""
        budget = len(stale) if max_lookups is None else max(0, max_lookups - fetched_count)
        until = None if deadline is None else self.clock.now() + deadline
        for key, obs in stale:
            if budget <= 0:
                return
            if not self.cache.claim_rescan(key, every_days):
                continue  # asked already, by this process or another
            budget -= 1
            if not await self.governor.acquire(priority, until):
                self.cache.forget_rescan(key)
                return
            try:
                await self.gateway.reanalyse(obs)
            except CredentialsRejected:
                raise
            except GatewayError as exc:
                log.info("reanalysis of %s not requested: %s", obs.kind.value, exc.code)

    def _invalid_reason(self, value: str, exc: InvalidObservable) -> str:
        # Internal names often have no public suffix (x.corp, printer.local), so parse() refuses
        # them; say the more useful thing: they are internal and are never sent.
        host = value.strip().lower().rstrip(".")
        for suffix in self.settings.privacy.internal_suffixes:
            if host.endswith(suffix) and " " not in host:
                return f"internal domain suffix {suffix} is never sent to VirusTotal"
        return f"not an indicator: {exc}"

    # -- building results ------------------------------------------------------------------
    def _from_report(self, obs: Observable, report: Report, cached: bool) -> Enrichment:
        return from_report(obs, report, self.settings.policy, cached)

    def _from_entry(self, obs: Observable, entry: CacheEntry) -> Enrichment:
        if entry.report is None:
            return _from_obs(
                obs.value, obs, Verdict.NOT_FOUND, reason=policy.NOT_FOUND.reason, cached=True
            )
        return self._from_report(obs, Report.from_dict(entry.report), cached=True)

    def _store(
        self,
        by_key: Dict[str, Tuple[Observable, List[str]]],
        fetched: Dict[str, Enrichment],
        answers: Dict[str, Enrichment],
        connector: str,
        now: float,
    ) -> None:
        records = []
        hits = [key for key, enr in answers.items() if enr.cached and enr.verdict in CACHEABLE]
        quiet = self.cache.logged_recently(hits, connector) if hits else set()
        for key, enr in answers.items():
            if enr.verdict not in CACHEABLE or key in quiet:
                continue
            obs = by_key[key][0]
            records.append(
                LogRecord(
                    key=_canonical(key, enr.report),
                    kind=obs.kind.value,
                    value=obs.value,
                    verdict=enr.verdict.value,
                    score=enr.score,
                    connector=connector,
                    at=now,
                    reason=enr.reason,
                )
            )
        if records:
            self.cache.log(records)

    def _keep(self, obs: Observable, enr: Enrichment, release: Sequence[str]) -> None:
        """Store one fetched answer (when it may be cached) and drop our lease on it in the same
        transaction: an asker in another process polling for it finds the entry, never a gap.
        Answers arriving together share a transaction (one per value cost a fifth of the cold
        path); none waits more than KEEP_EVERY."""
        if enr.verdict in CACHEABLE:
            now = self.clock.now()
            r = enr.report
            entry = CacheEntry(
                key=_canonical(obs.cache_key, r),
                verdict=enr.verdict.value,
                report=r.to_dict() if r else None,
                stored_at=now,
                expires_at=now + self.settings.cache.ttl_for(enr.verdict.value),
            )
            self._unsaved.append((entry, _aliases(obs.cache_key, r)))
        self._unreleased.extend(release)
        if len(self._unsaved) + len(self._unreleased) >= KEEP_BATCH:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(KEEP_EVERY, self._flush)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        items, release = self._unsaved, self._unreleased
        self._unsaved, self._unreleased = [], []
        if items or release:
            self.cache.put_many(items, release=release)

    def _remember(self, kind: Optional[str], out: Dict[str, Enrichment], until: float) -> None:
        size = self.settings.cache.lru_size
        if size <= 0:
            return  # off: the caller keeps its own answers (the Splunk command does)
        memo = self._memos.setdefault(kind, {})
        if len(out) > size:
            out = dict(list(out.items())[-size:])
        room = size - len(memo)
        if room < len(out):
            # Drop the oldest entries (dicts keep insertion order).
            for k in list(memo)[: len(out) - room]:
                del memo[k]
        for raw, enr in out.items():
            if enr.verdict in CACHEABLE:
                memo[raw] = (until, enr if enr.cached else replace(enr, cached=True))


def from_report(
    obs: Observable, report: Report, policy_settings: PolicySettings, cached: bool = False
) -> Enrichment:
    """An Enrichment for a VirusTotal report, with the policy's verdict (also used by sources
    that receive whole objects, such as the TAXII publisher's VirusTotal feeds)."""
    d = policy.decide(report, policy_settings)
    return Enrichment(
        value=obs.value,
        kind=obs.kind.value,
        verdict=d.verdict,
        score=d.score,
        reason=d.reason,
        normalized=obs.value,
        vt_id=report.id if obs.kind != Kind.URL else obs.vt_id,
        link=_link(obs, report),
        report=report,
        cached=cached,
    )


def _fresh(enr: Enrichment, rescan_before: float) -> bool:
    """A remembered answer can be reused unless its report is old and no rescan was asked yet."""
    r = enr.report
    return enr.stale or r is None or not r.last_analysis or r.last_analysis >= rescan_before


def _too_old(report: Optional[Report], now: float, days: float) -> bool:
    """Analysed more than `days` ago; a report without an analysis date has no known age."""
    return report is not None and bool(report.last_analysis) and report.age_days(now) > days


def _shared(obs: Observable, enr: Enrichment, policy_settings: PolicySettings) -> Enrichment:
    """Another asker's answer, as this asker's value names it (an MD5 for a SHA-256's answer).
    It cost this asker no call: cached, like an answer from the cache."""
    cached = enr.verdict in CACHEABLE
    if enr.kind == obs.kind.value and enr.normalized == obs.value:
        return replace(enr, value=obs.value, cached=cached or enr.cached)
    if enr.report is not None:
        return from_report(obs, enr.report, policy_settings, cached=True)
    return replace(
        enr,
        value=obs.value,
        kind=obs.kind.value,
        normalized=obs.value,
        vt_id=obs.vt_id,
        link=obs.gui_link,
        cached=cached or enr.cached,
    )


def _from_obs(
    value: str,
    obs: Observable,
    verdict: Verdict,
    *,
    score: int = 0,
    reason: str = "",
    error: str = "",
    cached: bool = False,
) -> Enrichment:
    return Enrichment(
        value=value,
        kind=obs.kind.value,
        verdict=verdict,
        score=score,
        reason=reason,
        normalized=obs.value,
        vt_id=obs.vt_id,
        link=obs.gui_link,
        cached=cached,
        error=error,
    )


def _link(obs: Observable, report: Report) -> str:
    if report.kind == "file":
        return f"https://www.virustotal.com/gui/file/{report.id}"
    return obs.gui_link


def _canonical(key: str, report: Optional[Report]) -> str:
    if report is not None and report.kind == "file" and report.sha256:
        return f"file:{report.sha256}"
    return key


def _aliases(key: str, report: Optional[Report]) -> Iterable[str]:
    aliases = {key}
    if report is not None and report.kind == "file":
        aliases.update(f"file:{h}" for h in (report.md5, report.sha1, report.sha256) if h)
    return aliases
