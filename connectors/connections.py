"""What every server part does with its connections, before a request reaches the app: idle
keep-alive and slow-header timeouts, a cap on open connections (a JSON 503 beyond it), one
rate-limited log line per misbehaving client instead of a traceback per malformed request, and
one line (not a traceback per accept) while the process is out of file descriptors.

The settings are the [server] section of vtconnect.toml and apply to each part on its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, fields
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .core.config import ConfigError

log = logging.getLogger(__name__)
ErrorBody = Callable[[int, str], web.Response]  # (status, description) -> the part's error
BUSY_LINGER = 1.0  # seconds a refused connection may keep sending before it is closed
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message for EMFILE & co


@dataclass(frozen=True)
class Limits:
    keepalive_timeout: float = 30.0  # seconds a connection may wait idle for its next request
    header_timeout: float = 10.0  # seconds from a request's first byte to its complete headers
    max_connections: int = 500  # open connections per server part; beyond: 503 and close
    log_every: float = 60.0  # seconds between log lines about one misbehaving client


def load_limits(raw: Mapping[str, Any]) -> Limits:
    section = raw.get("server", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[server] must be a table")
    known = {f.name: f for f in fields(Limits)}
    values: Dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ConfigError(f"unknown key server.{key} (known: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"server.{key} must be a number above 0")
        if key == "max_connections" and not isinstance(value, int):
            raise ConfigError("server.max_connections must be a whole number")
        if not math.isfinite(value):
            raise ConfigError(f"server.{key} must be a finite number")
        values[key] = value
    return Limits(**values)


class ClientLog:
    """At most one line per client address per `every` seconds; the lines left out are
    counted in the next one."""

    def __init__(self, part: str, every: float, size: int = 10_000) -> None:
        self.part, self.every, self.size = part, every, size
        self.seen: OrderedDict[str, Tuple[float, int]] = OrderedDict()

    def note(self, remote: Optional[str], status: int, reason: str) -> None:
        key, now = remote or "-", time.monotonic()
        last, left_out = self.seen.get(key, (-math.inf, 0))
        if now - last < self.every:
            self.seen[key] = (last, left_out + 1)
            return
        self.seen[key] = (now, 0)
        self.seen.move_to_end(key)
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
        # ascii(): the reason may quote the client's bytes; never let them forge log lines
        log.warning("event=bad_request part=%s remote=%s status=%d reason=%s left_out=%d",
                    self.part, key, status, ascii(reason[:200]), left_out)  # fmt: skip


class Guard:
    """The protocol factory for one part's listening socket (see `factory`)."""

    def __init__(self, part: str, limits: Limits, error_body: ErrorBody) -> None:
        self.part, self.limits, self.error_body = part, limits, error_body
        self.clients = ClientLog(part, limits.log_every)
        self.busy = raw_response(
            error_body(503, f"more than {limits.max_connections} open connections; retry soon"),
            {"Retry-After": "1"},
        )

    def factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        def make() -> asyncio.BaseProtocol:
            # Those closing stay listed until their task ends: they do not count.
            handlers = [h for h in server.connections if not h._force_close]
            if len(handlers) >= self.limits.max_connections and not _evict_idle(handlers):
                self.clients.note("-", 503, "connection limit reached")
                return Busy(self.busy)
            return GuardedHandler(server, self, loop=server._loop, **server._kwargs)

        return make


def _evict_idle(handlers: List[RequestHandler]) -> bool:
    """At the cap, an idle keep-alive connection makes room for a new one (so idle sockets
    alone never lock clients out); requests in progress are never cut."""
    for handler in handlers:
        if isinstance(handler, GuardedHandler) and handler.idle():
            handler.force_close()
            return True
    return False


class GuardedHandler(RequestHandler):
    """aiohttp's request handler with a header timeout and JSON answers for malformed requests.
    aiohttp's own keep-alive timer closes connections left idle after a response; a connection
    that never sends a byte is closed by ours (aiohttp 3.13 has none for it), and bytes that
    trickle in without completing the headers start the header timer."""

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._header_timer: Optional[asyncio.TimerHandle] = None
        self._silent_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._silent_timer = self._loop.call_later(
            self._guard.limits.keepalive_timeout, self._silent_too_long
        )

    def _silent_too_long(self) -> None:
        self._silent_timer = None
        if self.idle():
            self.force_close()

    def _between_requests(self) -> bool:
        return self._current_request is None and not self._messages

    def idle(self) -> bool:
        """Waiting for a request of which no byte has arrived."""
        return self._between_requests() and self._header_timer is None and not self._force_close

    def data_received(self, data: bytes) -> None:
        if self._silent_timer is not None:
            self._silent_timer.cancel()
            self._silent_timer = None
        waiting = self._between_requests()
        super().data_received(data)
        if not waiting:
            return
        if self._messages:  # the headers are complete
            self._stop_header_timer()
        elif self._header_timer is None and not self._force_close:
            self._header_timer = self._loop.call_later(
                self._guard.limits.header_timeout, self._headers_too_slow
            )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self._force_close:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            self._guard.clients.note(peer[0] if peer else None, 408, "request headers too slow")
            self.force_close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._stop_header_timer()
        if self._silent_timer is not None:
            self._silent_timer.cancel()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> web.StreamResponse:
        """A malformed request (bad request line, oversized header, ...) is the client's fault:
        one rate-limited line, no traceback, and the part's JSON error. A 500 here is ours."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            self._guard.clients.note(request.remote, status, message or repr(exc))
        if request.writer.output_size > 0:  # as aiohttp does: nothing more can be sent
            raise ConnectionError("the response is sent already; cannot send an error")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        described = f"malformed HTTP request ({type(exc).__name__})" if exc else phrase
        resp = self._guard.error_body(status, described if status < 500 else "internal error")
        resp.force_close()
        return resp


class Busy(asyncio.Protocol):
    """A connection beyond the cap: the 503, then close. What the client still sends is read
    and dropped for a moment, so that closing does not reset the connection before it reads
    the answer."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.reply)
        if transport.can_write_eof():
            transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(BUSY_LINGER, transport.close)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.timer is not None:
            self.timer.cancel()


def raw_response(resp: web.Response, extra: Mapping[str, str]) -> bytes:
    """The bytes of a small complete HTTP/1.1 answer (no aiohttp writer behind a Busy)."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    ctype = resp.headers.get("Content-Type") or f"{resp.content_type}; charset={resp.charset}"
    head = [f"HTTP/1.1 {resp.status} {resp.reason}", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}", "Connection: close"]  # fmt: skip
    head += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class AcceptErrors:
    """An event-loop exception handler. Out of file descriptors, asyncio logs a traceback per
    failed accept (several per loop tick); this turns them into one line every `every` seconds
    and hands anything else to the handler it replaces."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = 10.0) -> None:
        self.previous = loop.get_exception_handler()
        self.every, self.last, self.left_out = every, -math.inf, 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILED:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < self.every:
            self.left_out += 1
            return
        self.last, left_out, self.left_out = now, self.left_out, 0
        exc = context.get("exception")
        log.warning("event=accept_failed reason=%s left_out=%d (new connections wait; raise "
                    "the open-files limit or lower server.max_connections)",
                    ascii(getattr(exc, "strerror", None) or str(exc)), left_out)  # fmt: skip
