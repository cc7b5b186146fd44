"""Shared fixtures: the emulator on an ephemeral port and vt-py talking to it."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import aiohttp
import pytest
import vt

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator

EICAR = (
    "44d88612fea8a8f36de82e1278abb02f",
    "3395856ce81f2b7382dee72602f798b642f14140",
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
)
EMPTY = (
    "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
)
EICAR_CONTENT = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
REFERENCE = 1_750_000_000.0  # pins the dates so whole answers compare across instances


@pytest.fixture
async def emu():
    config = EmulatorConfig(keys={"pub": "public", "prem": "premium"}, reference_time=REFERENCE)
    async with running_emulator(config) as running:
        yield running


@pytest.fixture
async def client(emu):
    c = vt.Client("test-key", host=emu.url)  # inside the running loop, as vt-py requires
    yield c
    await c.close_async()


async def call(
    emu: Any,
    path: str,
    key: Optional[str] = "test-key",
    method: str = "GET",
    **kwargs: Any,
) -> Tuple[int, Dict[str, str], Any]:
    """A raw HTTP call: status, headers and JSON (or the text when it is not JSON)."""
    headers = {"X-Apikey": key} if key else {}
    session = aiohttp.ClientSession(headers=headers)
    async with session as s, s.request(method, emu.url + path, **kwargs) as r:
        text = await r.text()
        try:
            body: Any = await r.json(content_type=None)
        except ValueError:
            body = text
        return r.status, dict(r.headers), body
