"""The VirusTotal API v3 emulator as an aiohttp application.

vt-py talks to it unchanged (`vt.Client(key, host=url)`). Answers use VirusTotal's shapes and
error JSON; every answer carries `X-VT-Emulator: 1` and object answers `meta.emulator = true`.
Control endpoints under /_emulator/ count calls, reset state and change faults at run time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable, Optional

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.request_bodies import settled as _settled

from . import api, sources
from .faults import Faults
from .objects import InvalidArgument, NotFound
from .paging import BadPage
from .quota import TIERS
from .responses import coded, error
from .state import EMULATOR, Emulator, EmulatorConfig

__all__ = ["EMULATOR", "Emulator", "EmulatorConfig", "create_app"]

LOG = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREMIUM_ONLY = ("/api/v3/intelligence/", "/api/v3/ioc_stream")
TRUNCATED = b'{"data": {"type": "file", "id": "275a021bbfb6489e54d4718'
HTTP_CODES = {405: "BadRequestError", 413: "PayloadTooLargeError"}


def _http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (405, 413 from a form body, ...) in VirusTotal's error shape."""
    code = HTTP_CODES.get(exc.status, "NotFoundError" if exc.status == 404 else "ServerError")
    return error(exc.status, code, exc.reason)


async def _fault(emu: Emulator, request: web.Request) -> Optional[web.StreamResponse]:
    """An injected answer, or None to go on (possibly after a delay or a hang)."""
    faults = emu.config.faults
    delay = faults.delay()
    if delay:
        await asyncio.sleep(delay)
    fault = faults.pick()
    if fault == "drop":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never sent: the transport is gone
    if fault == "timeout":
        await asyncio.sleep(faults.timeout_s)
    elif fault == "malformed":
        return web.Response(status=200, body=TRUNCATED, content_type="application/json")
    elif fault == "ServerError":
        return web.Response(status=500, text="500 Internal Server Error")
    elif fault:
        throttled = fault in ("QuotaExceededError", "TooManyRequestsError")
        return coded(fault, "Injected fault", {"Retry-After": "1"} if throttled else None)
    return None


async def _api(emu: Emulator, request: web.Request, handler: Handler, key: str):
    cfg = emu.config
    if not key:
        return coded("AuthenticationRequiredError", "X-Apikey header is missing")
    if key == "disabled-key":
        return coded("UserNotActiveError", "User is not active")
    tier = cfg.keys.get(key)
    if tier is None:
        if not cfg.accept_any_key:
            return coded("WrongCredentialsError", "Wrong API key")
        tier = cfg.default_tier
    if tier == "public" and request.path.startswith(PREMIUM_ONLY):
        return coded("ForbiddenError", "You are not allowed to perform the requested operation")
    quota = emu.quota(key, tier)
    if quota.take():
        headers = {"Retry-After": str(quota.retry_after())}
        return coded("QuotaExceededError", f"Quota exceeded for the {tier} tier", headers)
    if cfg.faults.active():
        injected = await _fault(emu, request)
        if injected is not None:
            return injected
    try:
        return await handler(request)
    except (InvalidArgument, BadPage) as exc:
        return coded("InvalidArgumentError", str(exc))
    except NotFound as exc:
        return coded("NotFoundError", str(exc.args[0]) if exc.args else "Not found")
    except web.HTTPException:
        raise
    except (web.RequestPayloadError, BadHttpMessage):  # a body that cannot be read (bad gzip)
        return coded("InvalidArgumentError", "the request body cannot be read")
    except Exception as exc:  # answer like VirusTotal's 500, keep serving, leave a trace
        LOG.exception("emulator handler failed")
        return coded("ServerError", f"{type(exc).__name__}")


def _middleware(emu: Emulator):
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        api_call = request.path.startswith("/api/v3/")
        key = request.headers.get("X-Apikey", "")
        try:
            resp = await (_api(emu, request, handler, key) if api_call else handler(request))
        except web.HTTPException as exc:
            resp = _http_error(exc)
        except (web.RequestPayloadError, BadHttpMessage):  # control endpoints: the same
            resp = error(400, "InvalidArgumentError", "the request body cannot be read")
        if api_call:
            info = request.match_info.route.resource
            endpoint = info.canonical if info is not None else request.path
            gone = request.transport is None or request.transport.is_closing()
            emu.count(f"{request.method} {endpoint}", "dropped" if gone else str(resp.status), key)
        resp.headers["X-VT-Emulator"] = "1"
        return await _settled(request, resp)

    return middleware


# -- control endpoints ---------------------------------------------------------------------------
async def counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].counters_json())


async def reset(request: web.Request) -> web.Response:
    request.app[EMULATOR].reset()
    return web.json_response({"reset": True})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].config.faults.to_dict())


async def set_faults(request: web.Request) -> web.Response:
    try:
        faults = Faults.from_mapping(await request.json())
    except (ValueError, json.JSONDecodeError) as exc:
        return error(400, "InvalidArgumentError", str(exc))
    request.app[EMULATOR].config.faults = faults
    return web.json_response(faults.to_dict())


async def health(request: web.Request) -> web.Response:
    """Also says which quota the key asking (X-Apikey) gets, so a client can budget for it."""
    cfg = request.app[EMULATOR].config
    tier = cfg.keys.get(request.headers.get("X-Apikey", ""), cfg.default_tier)
    per_minute, per_day = {**TIERS, **cfg.tier_limits}[tier]
    return web.json_response(
        {"ok": True, "emulator": True, "tier": tier, "per_minute": per_minute, "per_day": per_day}
    )


async def no_endpoint(request: web.Request) -> web.Response:
    return error(404, "NotFoundError", f"{request.path} is not an API endpoint")


def create_app(config: Optional[EmulatorConfig] = None) -> web.Application:
    emu = Emulator(config or EmulatorConfig())
    app = web.Application(middlewares=[_middleware(emu)], client_max_size=1024 * 1024)
    app[EMULATOR] = emu
    app.add_routes(api.routes())
    app.add_routes(sources.routes())
    app.add_routes(
        [
            web.get("/_emulator/counters", counters),
            web.post("/_emulator/reset", reset),
            web.get("/_emulator/faults", get_faults),
            web.post("/_emulator/faults", set_faults),
            web.get("/_emulator/health", health),
            web.route("*", "/api/v3/{tail:.*}", no_endpoint),
            web.route("*", "/{tail:.*}", no_endpoint),
        ]
    )
    return app
