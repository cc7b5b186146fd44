"""One value, one call: askers of the same value at the same time share one API call.

In a process, one in-flight future per canonical cache key: a second enrich() asking a value the
first one is fetching waits for that answer. Across processes on the host (and across hosts
sharing a PostgreSQL store), a short lease row in the store: the first asker holds it while it
asks VirusTotal and drops it in the same transaction that stores the answer; later askers poll
the cache for the entry, each up to its own deadline. A lease lasts LEASE_SECONDS (renewed while
its holder still waits, say for a governor slot) and is free at once when its holder's process
has died (on another host: once its time is up).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Set, Tuple

from .observable import Kind, Observable
from .store import CacheEntry, CacheStore
from .verdict import Enrichment, Verdict

LEASE_SECONDS = 30.0
LEASE_POLL = 0.05  # seconds between looks at the cache while another process holds the lease
KEEP_EVERY = 1.0  # seconds a fetched answer may wait to be stored with others (see keep)
KEEP_BATCH = 2000

Call = Callable[[Observable], Awaitable[Enrichment]]
# what to store for a fetched answer (None: not cacheable), and the aliases of its entry
EntryFor = Callable[[Observable, Enrichment], Optional[Tuple[CacheEntry, Iterable[str]]]]
FromEntry = Callable[[Observable, CacheEntry], Enrichment]
# another asker's answer as this observable names it (an MD5 for a SHA-256's answer)
SharedAs = Callable[[Observable, Enrichment], Enrichment]


class _Abandoned(Exception):
    """The asker another one waited for got no answer it can share (a deadline, the budget):
    the waiter asks itself."""


@dataclass
class Plan:
    """Who asks what in one batch: cache key -> shared key, and which futures we lead."""

    keys: Dict[str, str]
    leading: Dict[str, asyncio.Future[Enrichment]] = field(default_factory=dict)
    following: Dict[str, asyncio.Future[Enrichment]] = field(default_factory=dict)
    leased: Set[str] = field(default_factory=set)
    share: bool = True


class Flights:
    def __init__(
        self, cache: CacheStore, entry_for: EntryFor, from_entry: FromEntry, shared_as: SharedAs
    ) -> None:
        self.cache = cache
        self._entry_for = entry_for
        self._from_entry = from_entry
        self._shared_as = shared_as
        self._inflight: Dict[str, asyncio.Future[Enrichment]] = {}
        # fetched answers not stored yet, and our leases to drop with them (see keep)
        self._unsaved: List[Tuple[CacheEntry, Iterable[str]]] = []
        self._unreleased: List[str] = []
        self._flush_timer: Optional[asyncio.TimerHandle] = None
        # keys another process leases -> our askers waiting for its entry (see _wait_for_holder)
        self._watched: Dict[str, List[asyncio.Future[Optional[CacheEntry]]]] = {}
        self._watcher: Optional[asyncio.Task[None]] = None

    def plan(self, observables: List[Observable], share: bool) -> Plan:
        """Synchronous, so that a concurrent enrich() sees our futures before any await.
        `share`: lease the values host-wide (with the cache on)."""
        loop = asyncio.get_running_loop()
        keys = {o.cache_key: o.cache_key for o in observables}
        aliased = [o.cache_key for o in observables if o.kind in (Kind.MD5, Kind.SHA1)]
        if aliased:  # the SHA-256 of a file whose MD5/SHA-1 the cache has seen
            keys.update(self.cache.canonical(aliased))
        plan = Plan(keys, share=share)
        for obs in observables:
            key = keys[obs.cache_key]
            fut = self._inflight.get(key)
            if fut is not None and fut.get_loop() is loop and not fut.done():
                plan.following[obs.cache_key] = fut
            else:
                plan.leading[obs.cache_key] = self._inflight[key] = loop.create_future()
        lead = [keys[k] for k in plan.leading]
        try:
            plan.leased = self.cache.take_leases(lead, LEASE_SECONDS) if share else set(lead)
        except BaseException:  # the database refused: nobody may wait on these futures
            for cache_key, fut in plan.leading.items():
                fut.set_exception(_Abandoned())
                fut.exception()
                if self._inflight.get(keys[cache_key]) is fut:
                    del self._inflight[keys[cache_key]]
            raise
        return plan

    async def answer(self, plan: Plan, obs: Observable, call: Call) -> Enrichment:
        key = plan.keys[obs.cache_key]
        fut = plan.leading.get(obs.cache_key)
        if fut is None:
            return await self._follow(obs, key, plan.following[obs.cache_key], call, plan.share)
        return await self._lead(obs, key, fut, key in plan.leased, call, plan.share)

    async def renew(self, plan: Plan, observables: List[Observable], tasks: List[Any]) -> None:
        """Runs beside the batch: a holder still waiting (for a governor slot) keeps its
        leases."""
        if not plan.share or not plan.leased:
            return
        keys = [plan.keys[o.cache_key] for o in observables]
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            busy = [k for k, t in zip(keys, tasks) if not t.done()]
            if busy:
                self.cache.renew_leases(busy, LEASE_SECONDS)

    async def _lead(
        self,
        obs: Observable,
        key: str,
        fut: asyncio.Future[Enrichment],
        leased: bool,
        call: Call,
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
                self.keep(obs, enr, release=[key] if share else [])
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
        call: Call,
        share: bool,
    ) -> Enrichment:
        """Wait for the answer another enrich() of this process is fetching; ask ourselves when
        it gives up."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return self._shared_as(obs, await asyncio.shield(fut))
            except _Abandoned:
                pass
            nxt = self._inflight.get(key)
            if nxt is not None and nxt.get_loop() is loop and not nxt.done():
                fut = nxt
                continue
            fut = self._inflight[key] = loop.create_future()
            leased = key in self.cache.take_leases([key], LEASE_SECONDS) if share else True
            return await self._lead(obs, key, fut, leased, call, share)

    async def _wait_for_holder(self, obs: Observable, key: str) -> Optional[Enrichment]:
        """Another process leases `key`: its answer from the cache, or None once the lease is
        gone without one (an error is not cached) or its holder died. The caller's deadline
        cancels the wait. One watcher polls for every waiting key at once (two queries per
        LEASE_POLL, not two per key: a batch another host is fetching may be thousands)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Optional[CacheEntry]] = loop.create_future()
        self._watched.setdefault(key, []).append(fut)
        watcher = self._watcher
        if watcher is None or watcher.done() or watcher.get_loop() is not loop:
            self._watcher = loop.create_task(self._watch())
        try:
            entry = await fut
        finally:
            waiting = self._watched.get(key, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._watched.pop(key, None)
        return self._from_entry(obs, entry) if entry is not None else None

    async def _watch(self) -> None:
        """Resolve this loop's waiters: with the entry once stored, None once the lease is
        gone; a failing store fails every waiter, as it would have failed each poll."""
        loop = asyncio.get_running_loop()
        while True:
            mine = {k: [f for f in fs if f.get_loop() is loop and not f.done()]
                    for k, fs in list(self._watched.items())}  # fmt: skip
            keys = [k for k, fs in mine.items() if fs]
            if not keys:
                return
            try:
                entries = self.cache.get_many(keys)
                rest = [k for k in keys if k not in entries]
                held = self.cache.leases_held(rest) if rest else set()
            except Exception as exc:
                for fs in mine.values():
                    for f in fs:
                        f.set_exception(exc)
                return
            except BaseException:  # cancelled: so are the waits
                for fs in mine.values():
                    for f in fs:
                        f.cancel()
                raise
            for k in keys:
                if k in entries or k not in held:
                    for f in mine[k]:
                        f.set_result(entries.get(k))
            await asyncio.sleep(LEASE_POLL)

    # -- storing answers -----------------------------------------------------------------------
    def keep(self, obs: Observable, enr: Enrichment, release: Iterable[str]) -> None:
        """Store one fetched answer (when it may be cached) and drop our lease on it in the same
        transaction: an asker in another process polling for it finds the entry, never a gap.
        Answers arriving together share a transaction: small transactions cost 3x per entry
        (measured: 42 for 3,000 entries took 1.0 s, one took 0.3 s). None waits more than
        KEEP_EVERY; a batch stores what is left when it ends."""
        item = self._entry_for(obs, enr)
        if item is not None:
            self._unsaved.append(item)
        self._unreleased.extend(release)
        if len(self._unsaved) + len(self._unreleased) >= KEEP_BATCH:
            self.flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(KEEP_EVERY, self.flush)

    def flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        items, release = self._unsaved, self._unreleased
        self._unsaved, self._unreleased = [], []
        if items or release:
            self.cache.put_many(items, release=release)
