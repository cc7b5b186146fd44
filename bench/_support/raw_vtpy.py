"""The cold anchor every benchmark compares with: raw vt-py asking the emulator for file
reports, `concurrency` requests in flight, nothing parsed, stored or budgeted."""

from __future__ import annotations

import asyncio
import time

import vt


async def raw_vtpy_seconds(url: str, values: list, concurrency: int) -> float:
    client = vt.Client("bench-key", host=url)
    sem = asyncio.Semaphore(concurrency)

    async def one(h: str) -> None:
        async with sem:
            try:
                await client.get_json_async(f"/files/{h}")
            except vt.APIError:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(one(h) for h in values))
    took = time.perf_counter() - started
    await client.close_async()
    return took
