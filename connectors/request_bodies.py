"""A request body a server answered without reading (a 401, 404 or 415 before the body) must
still be drained for the connection to be reused. aiohttp drains it itself, and logs a
traceback when that body is gzip or deflate data that does not decompress. Every server part
(TAXII, the webhook receiver, the emulator) settles such answers here instead: the body is
drained as aiohttp would, and the connection closed when it cannot be decoded.

Shared plumbing for the servers, like connections.py: it imports no part."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

LINGER = 10.0  # seconds a body left unread may take to drain, as aiohttp's own lingering read


async def settled(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Answer a request whose compressed body was not read to its end, then drain that body
    here as aiohttp would, but close the connection when it cannot be decoded (gzip or deflate
    data that does not decompress) instead of letting aiohttp log a traceback."""
    if (
        "Content-Encoding" not in request.headers
        or not request.body_exists
        or request.content.is_eof()
        or response.prepared
    ):
        return response
    await response.prepare(request)
    await response.write_eof()

    async def drain() -> None:
        while await request.content.readany():
            pass

    try:
        await asyncio.wait_for(drain(), LINGER)
    except (web.RequestPayloadError, BadHttpMessage, asyncio.TimeoutError):
        request.protocol.force_close()
    return response
