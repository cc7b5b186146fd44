"""Askers waiting on another process's leases (flights.py), on both core stores: one watcher
polls for every waiting key at once, so a batch another host is fetching costs two queries per
poll, not two per value; each waiter gets the holder's entry (no call of its own), or asks
itself once the lease is gone without one."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Iterable, List

import pytest

from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.core.store import CacheEntry, open_cache
from connectors.core.store.postgres import PostgresCache
from connectors.core.store.sqlite import SQLiteCache
from connectors.emulator.server import running_emulator

from .test_one_call import calls


def counting(base: type) -> type:
    """The real store, recording the keys of each get_many (what a poll asks)."""

    class Counting(base):  # type: ignore[misc, valid-type]
        asked: List[List[str]]

        def get_many(self, keys: Iterable[str]):
            keys = list(keys)
            self.__dict__.setdefault("asked", []).append(keys)
            return super().get_many(keys)

    return Counting


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return str(tmp_path / "cache.db")


async def test_waiters_on_a_batch_poll_together_and_take_the_holders_entries(tmp_path, target):
    async with running_emulator() as emu:
        s = config.for_emulator(config.from_mapping({}, env={}), emu.url, str(tmp_path / "st"))
        s = replace(s, quota=replace(s.quota, tier="unlimited"))
        s = replace(s, cache=replace(s.cache, lru_size=0))
        values = [f"{i:064x}" for i in range(1, 201)]
        keys = [f"file:{v}" for v in values]
        holder = open_cache(target, s.cache)  # another process, fetching these values
        base = PostgresCache if target.startswith("postgresql") else SQLiteCache
        store = counting(base)(target, s.cache)
        e = Enricher(s, connector="test", cache=store)
        try:
            assert holder.take_leases(keys, 60) == set(keys)
            asking = asyncio.ensure_future(e.enrich(values, deadline=30))
            while not any(len(k) == len(keys) for k in getattr(store, "asked", [])[1:]):
                assert not asking.done(), asking.result()
                await asyncio.sleep(0.01)
            holder.put_many(
                [
                    (CacheEntry(k, "harmless", {"kind": "file", "id": k[5:]}, time.time()), [])
                    for k in keys[:150]
                ],  # fmt: skip
                release=keys,  # the other 50 failed there: no entry, the lease is gone
            )
            out = await asyncio.wait_for(asking, 30)
        finally:
            await e.aclose()
            e.close()
            holder.close()
        assert [r.cached for r in out] == [True] * 150 + [False] * 50
        assert await calls(emu.url) == 50  # only what the holder could not answer
        polls = [k for k in store.asked if set(k) <= set(keys) and len(k) > 1]
        assert polls and all(len(k) >= 50 for k in polls)  # never one poll per value
