"""Request bodies as every server part (TAXII, the webhook receiver and hub, the emulator) takes
them: read up to a cap (counted after decompression, so a gzip bomb stops there too), invited by
`100 Continue` only when they will be read, and drained (or the connection closed) when the
answer came before the body was read.

A body a server answered without reading (a 401, 404 or 415 before the body) must still be
drained for the connection to be reused. aiohttp drains it itself, and logs a traceback when
that body is gzip or deflate data that does not decompress; `settled` does it instead.

Shared plumbing for the servers, like connections.py: it imports no part."""

from __future__ import annotations

import asyncio
from typing import Optional

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


async def read_capped(request: web.Request, cap: int) -> Optional[bytes]:
    """The body, or None as soon as it is longer than `cap` bytes (after decompression). Raises
    web.RequestPayloadError or BadHttpMessage when it cannot be read (gzip that is not)."""
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):  # read() may return less
        raw += chunk
        if len(raw) > cap:
            return None
    return bytes(raw)


async def invite(request: web.Request, refusal: Optional[web.Response]) -> Optional[web.Response]:
    """Answer `Expect: 100-continue`: the refusal (the body never sent, so the connection cannot
    be reused), else the interim `100 Continue` that invites the body."""
    if refusal is not None:
        refusal.force_close()
        return refusal
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the response
    return None


def last_line(exc: Exception) -> str:
    """The last non-blank line of an exception's message (aiohttp's are several lines)."""
    return ([x.strip() for x in str(exc).splitlines() if x.strip()] or [type(exc).__name__])[-1]
