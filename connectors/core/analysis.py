"""Bounded polling of GET /analyses/{id} after a scan or a reanalysis request."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict

from .gateway import Gateway, GatewayError


async def wait_for_analysis(
    gateway: Gateway, analysis_id: str, *, timeout: float = 300.0, interval: float = 5.0
) -> Dict[str, Any]:
    """Poll until status is "completed"; raise GatewayError("Timeout") after `timeout` seconds.
    The interval grows (x1.5, at most 30 s) so a long analysis does not burn the quota."""
    give_up = time.monotonic() + timeout
    wait = min(interval, 1.0)  # the first poll comes quickly: small files finish fast
    while True:
        doc = await gateway.analysis(analysis_id)
        if doc["data"]["attributes"].get("status") == "completed":
            return doc
        left = give_up - time.monotonic()
        if left <= 0:
            raise GatewayError(
                "Timeout", f"analysis {analysis_id} not completed after {timeout:g} s"
            )
        await asyncio.sleep(min(wait, left))
        wait = min(30.0, max(interval, wait * 1.5))
