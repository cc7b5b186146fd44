"""The receiver's JSON error answer, {"error": code, "message": text} (serve.py gives it for
its listener too, before a request reaches the app), and the middleware that turns what a
handler raises into one."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Dict, Optional

from aiohttp import web

from connectors.request_bodies import settled as _settled

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fail(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = fail(exc.status, "http", exc.reason)
    except Exception:  # a bug, never bad input (the tests show bad input stays 4xx)
        log.exception("webhook request failed")
        response = fail(500, "internal", "internal error")
    return await _settled(request, response)
