"""A loopback HTTP proxy in front of the emulator that records every request it forwards:
method, path with query, body and the answer's status. What a proxy in front of VirusTotal
would see is exactly what left the host."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import List, Optional

import aiohttp
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Seen:
    method: str
    path_qs: str  # as sent, percent-encoding kept
    body: bytes
    status: int

    @property
    def api(self) -> bool:
        return self.path_qs.startswith("/api/v3/")


class RecordingProxy:
    """Runs in its own thread and loop; `seen` grows as requests are answered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: List[Seen] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def since(self, mark: int) -> List[Seen]:
        with self._lock:
            return [s for s in self.seen[mark:] if s.api]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        assert self._session is not None
        async with self._session.request(
            request.method,
            self.upstream + request.raw_path,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            data = await up.read()
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
            with self._lock:
                self.seen.append(Seen(request.method, request.raw_path, body, up.status))
            return web.Response(body=data, status=up.status, headers=out_headers)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.run_until_complete(self._session.close())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="recording-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self.url

    def stop(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
