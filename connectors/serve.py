"""`vtconnect serve`: one process for every server part, sharing one enricher, cache and quota
governor. Each part is an aiohttp Application built by its package (`build_app(settings,
enricher)`), served on its own address, with graceful shutdown on SIGTERM/SIGINT.

This module and cli.py are the composition root: the only places that know every adapter.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Mapping, Optional

from aiohttp import web

from .connections import AcceptErrors, ErrorBody, Guard, Limits, load_limits
from .core.config import ConfigError, Settings
from .core.enricher import Enricher

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"taxii": 9443, "webhook": 9080}
STORE_KEYS = {"taxii": "taxii.store", "webhook": "webhook.outbox"}  # the files each part opens


@dataclass
class Part:
    name: str
    host: str
    port: int
    ssl_context: Optional[ssl.SSLContext]
    factory: Callable[[Settings, Enricher], web.Application]
    limits: Limits = field(default_factory=Limits)


def _factory(name: str) -> Callable[[Settings, Enricher], web.Application]:
    if name == "taxii":
        from taxii.server import build_app

        return build_app
    from .hub.api import add_routes
    from .webhook.app import build_app as build_webhook

    def webhook_and_hub(settings: Settings, enricher: Enricher) -> web.Application:
        app = build_webhook(settings, enricher)
        add_routes(app, settings, enricher)  # POST /v1/enrich on the receiver's listener
        return app

    return webhook_and_hub


def _error_body(name: str) -> ErrorBody:
    """The part's own error shape, for answers given before a request reaches its app."""
    if name == "taxii":
        from taxii.errors import error

        return lambda status, text: error(status, HTTPStatus(status).phrase, text)
    from .webhook.errors import fail

    def webhook_error(status: int, text: str) -> web.Response:
        return fail(status, HTTPStatus(status).phrase.lower().replace(" ", "_"), text)

    return webhook_error


def _check_section(name: str, settings: Settings) -> None:
    """The whole section as its package reads it: a wrong value is a ConfigError naming the key
    before anything is bound, never a traceback from a part that is half started."""
    if name == "taxii":
        from taxii.config import load as load_taxii

        load_taxii(settings.raw)
    else:
        from .webhook.config import load as load_webhook

        load_webhook(settings.raw)


def plan(settings: Settings, parts: List[str]) -> List[Part]:
    """Which parts to run and where, from the [taxii] and [webhook] sections (validated whole)."""
    out = []
    limits = load_limits(settings.raw)
    for name in parts:
        section: Mapping[str, Any] = settings.raw.get(name, {}) or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        _check_section(name, settings)
        host = section.get("host", "127.0.0.1")
        port = section.get("port", DEFAULT_PORTS[name])
        if not isinstance(host, str) or not host:
            raise ConfigError(f"{name}.host must be a host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"{name}.port must be a port number (0-65535)")
        ctx = None
        cert, key = section.get("tls_cert"), section.get("tls_key")
        if cert or key:
            if not (isinstance(cert, str) and isinstance(key, str)):
                raise ConfigError(f"{name}.tls_cert and {name}.tls_key go together")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"{name}: cannot load TLS certificate/key: {exc}") from None
        out.append(Part(name, host, port, ctx, _factory(name), limits))
    from .hub.config import load as load_api
    from .status import load_users

    load_users(settings.raw)  # a bad [status] (or [api]) is an error before anything binds
    load_api(settings.raw)
    return out


async def serve(
    settings: Settings,
    parts: List[Part],
    ready: Optional[Callable[[Dict[str, str]], None]] = None,
    stop: Optional[asyncio.Event] = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set). `ready` gets {part: base URL} once listening."""
    from . import observe
    from .status import StatusPage, load_users

    try:
        enricher = Enricher(settings, connector="serve")
    except (OSError, sqlite3.Error) as exc:  # the cache and quota files
        raise ConfigError(f"core.state_dir: cannot open the cache: {exc}") from None
    status_page = StatusPage(settings, enricher) if load_users(settings.raw) else None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    loop.set_exception_handler(AcceptErrors(loop))
    runners: List[web.AppRunner] = []
    listeners: List[asyncio.AbstractServer] = []
    urls: Dict[str, str] = {}
    try:
        # Every part is built before any is bound, and every address bound before any part
        # says it listens: a failure leaves nothing half started.
        for part in parts:
            try:
                app = part.factory(settings, enricher)
            except (OSError, sqlite3.Error) as exc:  # its database cannot be opened
                raise ConfigError(f"{STORE_KEYS[part.name]}: cannot open it: {exc}") from None
            observe.install(app, part.name, enricher, status_page.paths() if status_page else None)
            runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=10.0,
                keepalive_timeout=part.limits.keepalive_timeout,
            )
            await runner.setup()
            runners.append(runner)
        for part, runner in zip(parts, runners):
            assert runner.server is not None
            # Our own listener instead of a TCPSite: connections go through the Guard.
            guard = Guard(part.name, part.limits, _error_body(part.name))
            try:
                listener = await loop.create_server(
                    guard.factory(runner.server), part.host, part.port, ssl=part.ssl_context,
                    backlog=128, reuse_address=True,
                )  # fmt: skip
            except OSError as exc:  # in use, not ours to bind, unknown host
                raise ConfigError(
                    f"{part.name}.port: cannot listen on {part.host}:{part.port}: "
                    f"{exc.strerror or exc}"
                ) from None
            listeners.append(listener)
            port = listener.sockets[0].getsockname()[1]  # the real port when 0
            scheme = "https" if part.ssl_context else "http"
            urls[part.name] = f"{scheme}://{part.host}:{port}"
        for name, url in urls.items():
            log.info("%s listening on %s", name, url)
        if ready:
            ready(urls)
        await stop.wait()
        log.warning("shutting down")
    finally:
        for listener in listeners:
            listener.close()  # no new connections; the runners close the open ones
        # Runner cleanup runs each app's on_shutdown/on_cleanup: workers finish or re-queue.
        for runner in reversed(runners):
            await runner.cleanup()
        if status_page is not None:
            status_page.close()
        await enricher.aclose()
        enricher.close()
