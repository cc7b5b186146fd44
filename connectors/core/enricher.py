"""The enrichment pipeline every connector calls: values in, one Enrichment per value out.

Per call: dedupe, classify and filter, answer from the cache, then ask VirusTotal for the rest
through the quota governor with bounded concurrency, apply the policy, store. Nothing here blocks
past the caller's deadline: what the budget or the clock does not allow comes back as `quota`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import policy, relationships
from .clock import Clock
from .config import PolicySettings, Settings
from .flights import Flights
from .gateway import (
    BadAnswer,
    BudgetSpent,
    CredentialsRejected,
    Gateway,
    GatewayError,
    NotFound,
    RateLimited,
    Slot,
)
from .gcroom import roomy_young_generation
from .ledger import ledger_target
from .lists import matcher as lists_matcher
from .observable import InvalidObservable, Kind, Observable, parse
from .privacy import skip_reason
from .quota import Priority, QuotaGovernor
from .report import Report
from .store import CacheEntry, CacheStore, LogRecord, cache_for
from .verdict import CACHEABLE, Enrichment, Verdict

log = logging.getLogger(__name__)

# An in-process memo answers repeated values without parsing them again; it trusts an entry
# for at most this long so that writes by other processes (a rescan, a purge) are seen.
MEMO_SECONDS = 60.0
CREDENTIALS_REMOVED = "credentials removed from the URL before lookup"


class Enricher:
    """Shared by every connector in a process. Async API plus `enrich_sync` for callers
    without an event loop (the Splunk command)."""

    def __init__(
        self,
        settings: Settings,
        *,
        connector: str = "cli",
        cache: Optional[CacheStore] = None,
        governor: Optional[QuotaGovernor] = None,
        gateway: Optional[Gateway] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.clock = clock or Clock()
        self.cache = cache or cache_for(settings, self.clock)
        per_minute, per_day = settings.quota.limits()
        self._own_governor = governor is None
        self.governor = governor or QuotaGovernor(
            ledger_target(settings),
            settings.virustotal.api_key.get(),
            per_minute,
            per_day,
            self.clock,
            shares=dict(settings.quota.shares),
            tier=settings.quota.tier,
        )
        self._gateway = gateway
        self.lists = lists_matcher(settings.lists)
        # kind option -> raw value -> (trusted until, cached Enrichment)
        self._memos: Dict[Optional[str], Dict[str, Tuple[float, Enrichment]]] = {}
        self._relationships = relationships.per_collection(settings.virustotal.relationships)
        # one value, one call: in-flight answers and leases (flights.py)
        self._flights = Flights(
            self.cache,
            self._entry_for,
            self._from_entry,
            lambda obs, enr: _shared(obs, enr, settings.policy),
        )

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = Gateway(self.settings.virustotal, self.governor)
        return self._gateway

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()

    def close(self) -> None:
        self.cache.close()
        if self._own_governor:
            self.governor.close()

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
        stripped: List[str] = []  # URLs sent without their userinfo
        for value in values:
            try:
                obs = parse(value, kind)
            except InvalidObservable as exc:
                out[value] = Enrichment(
                    value, "", Verdict.SKIPPED, reason=self._invalid_reason(value, exc)
                )
                continue
            # [lists] decide before privacy, the cache and the governor: no call, no hit counted.
            rule = self.lists.match(obs)
            if rule is not None:
                out[value] = _from_obs(
                    value, obs, rule.verdict, score=rule.score, reason=rule.reason
                )
                continue
            why = skip_reason(obs, self.settings.privacy)
            if why:
                out[value] = _from_obs(value, obs, Verdict.SKIPPED, reason=why)
                continue
            if obs.userinfo_removed:
                stripped.append(value)
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
        with roomy_young_generation():  # the collector took ~17% of a cold lookup's CPU
            fetched = await self._fetch_strongest_first(
                missing, answers, priority, deadline, max_lookups, connector, share=use_cache
            )
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
                stale,
                rescan_days,
                priority,
                deadline,
                fetched_count=calls,
                max_lookups=max_lookups,
                connector=connector,
            )

        self._store(by_key, fetched, answers, connector, now)
        self.cache.count_hit(connector, hits, len(missing))
        memo_until = now + MEMO_SECONDS
        for key, (_, raws) in by_key.items():
            enr = answers[key]
            for raw in raws:
                out[raw] = enr if raw == enr.value else replace(enr, value=raw)
        for raw in stripped:
            if raw in out:
                enr = out[raw]
                out[raw] = replace(enr, reason=f"{enr.reason} ({CREDENTIALS_REMOVED})")
        self._remember(kind, out, memo_until)
        return out

    async def _fetch_strongest_first(
        self,
        observables: List[Observable],
        known: Dict[str, Enrichment],
        priority: Priority,
        deadline: Optional[float],
        max_lookups: Optional[int],
        connector: str,
        share: bool,
    ) -> Dict[str, Enrichment]:
        """_fetch_all, with the hashes of a batch asked strongest first (SHA-256, then SHA-1,
        then MD5): a weaker hash that an answer (or a `known` one) lists as the same file's
        costs no call. A weaker kind waits only when a stronger kind is in the batch."""
        phases = _phases(observables)
        if len(phases) == 1:
            return await self._fetch_all(
                observables, priority, deadline, max_lookups, connector, share=share
            )
        until = None if deadline is None else self.clock.now() + deadline
        limit = max_lookups
        fetched: Dict[str, Enrichment] = {}
        for phase in phases:
            files = _files_named(list(known.values()) + list(fetched.values()))
            todo = []
            for obs in phase:
                same = files.get(obs.value)
                if same is None:
                    todo.append(obs)
                else:
                    fetched[obs.cache_key] = _shared(obs, same, self.settings.policy)
            left = None if until is None else max(0.0, until - self.clock.now())
            fetched.update(
                await self._fetch_all(todo, priority, left, limit, connector, share=share)
            )
            if limit is not None:
                limit = max(0, limit - len(todo))
        return fetched

    async def _fetch_all(
        self,
        observables: List[Observable],
        priority: Priority,
        deadline: Optional[float],
        max_lookups: Optional[int],
        connector: str = "",
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
        slot = Slot(priority, until, connector)  # immutable: one for the whole batch

        async def call(obs: Observable) -> Enrichment:
            async with sem:
                if fatal:
                    return _from_obs(obs.value, obs, Verdict.ERROR, reason="not looked up")
                return await self._fetch_one(obs, slot, fatal)

        # One value, one call: a value another enrich() of this process is fetching waits for
        # that answer; one another process leases waits for its cache entry (flights.py).
        chosen = observables[:limit]
        plan = self._flights.plan(chosen, share)

        async def one(obs: Observable) -> None:
            results[obs.cache_key] = await self._flights.answer(plan, obs, call)

        tasks = [asyncio.ensure_future(one(o)) for o in chosen]
        renewer = asyncio.ensure_future(self._flights.renew(plan, chosen, tasks))
        timeout = None if until is None else max(0.0, until - self.clock.now())
        try:
            try:
                done, pending = (
                    await asyncio.wait(tasks, timeout=timeout) if tasks else (set(), set())
                )
            except asyncio.CancelledError:  # the caller gave up (Ctrl-C, shutdown): so do fetches
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            renewer.cancel()
            self._flights.flush()
        # Every task's exception is retrieved (else asyncio logs "Task exception was never
        # retrieved" with a traceback for each), then a rejected key wins over the rest.
        failures = [t.exception() for t in done if not t.cancelled()]
        if fatal:
            raise fatal[0]
        for exc in failures:
            if exc is not None:
                raise exc
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

    async def _fetch_one(
        self,
        obs: Observable,
        slot: Slot,
        fatal: List[CredentialsRejected],
    ) -> Enrichment:
        # The gateway asks the governor before every attempt and honours 429s host-wide.
        try:
            report = await self.gateway.fetch(obs, self._relationships[obs.kind.collection], slot)
        except NotFound:
            return _from_obs(
                obs.value, obs, Verdict.NOT_FOUND, score=0, reason=policy.NOT_FOUND.reason
            )
        except BudgetSpent as exc:
            return _from_obs(obs.value, obs, Verdict.QUOTA, reason=f"not looked up: {exc.message}")
        except RateLimited as exc:
            return _from_obs(
                obs.value,
                obs,
                Verdict.QUOTA,
                reason=f"VirusTotal kept answering 429 ({exc.code}); not looked up",
            )
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
        connector: str = "",
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
            try:
                await self.gateway.reanalyse(obs, Slot(priority, until, connector))
            except (BudgetSpent, RateLimited):
                self.cache.forget_rescan(key)  # not asked after all
                return
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

    def _entry_for(
        self, obs: Observable, enr: Enrichment
    ) -> Optional[Tuple[CacheEntry, Iterable[str]]]:
        """The cache entry (and its aliases) for a fetched answer; None when not cacheable."""
        if enr.verdict not in CACHEABLE:
            return None
        now = self.clock.now()
        r = enr.report
        verdict = enr.verdict.value
        key = obs.cache_key
        entry = CacheEntry(
            key=_canonical(key, r),
            verdict=verdict,
            report=r.to_dict() if r else None,
            stored_at=now,
            expires_at=now + self.settings.cache.ttl_for(verdict),
        )
        return entry, _aliases(key, r)

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
                memo[raw] = (until, enr if enr.cached else _as_cached(enr))


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


# Hash kinds, strongest first: the answer for a SHA-256 lists the file's SHA-1 and MD5, and an
# MD5 (collisions are cheap to make) is the weakest name of a file.
_STRENGTH = (Kind.SHA256, Kind.SHA1, Kind.MD5)


def _phases(observables: List[Observable]) -> List[List[Observable]]:
    """Observables in the order to ask them: everything but the weaker hashes first, then each
    weaker hash kind present after the stronger ones (a batch of MD5s alone is one phase)."""
    present = [k for k in _STRENGTH if any(o.kind == k for o in observables)]
    phases: List[List[Observable]] = [[] for _ in present] or [[]]
    for obs in observables:
        phases[present.index(obs.kind) if obs.kind in present else 0].append(obs)
    return [p for p in phases if p] or [[]]


def _files_named(answers: Iterable[Enrichment]) -> Dict[str, Enrichment]:
    """Each hash that a file answer's report lists, to that answer."""
    out: Dict[str, Enrichment] = {}
    for enr in answers:
        r = enr.report
        if r is not None and r.kind == "file" and enr.verdict in CACHEABLE:
            for h in (r.sha256, r.sha1, r.md5):
                if h:
                    out.setdefault(h, enr)
    return out


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
        for h in (report.md5, report.sha1, report.sha256):
            if h:
                aliases.add("file:" + h)
    return aliases


def _as_cached(enr: Enrichment) -> Enrichment:
    """A copy marked cached. Built from the instance dict: dataclasses.replace runs __init__
    over every field and copy.copy goes through __reduce_ex__ (both measured on the cold path,
    ~20 and ~10 µs per value)."""
    out = object.__new__(Enrichment)
    out.__dict__.update(enr.__dict__)
    out.cached = True
    return out
