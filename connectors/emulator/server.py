"""Running the emulator: blocking (the CLI), as an async context manager (async tests, the
demo), or in a thread with its own loop (sync tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import AsyncIterator, Optional

from aiohttp import web

from .app import EMULATOR, Emulator, EmulatorConfig, create_app


class Running:
    def __init__(self, url: str, app: web.Application) -> None:
        self.url = url
        self.app = app

    @property
    def emulator(self) -> Emulator:  # counters, config.faults, objects
        return self.app[EMULATOR]


async def _start(
    config: Optional[EmulatorConfig], host: str, port: int
) -> tuple[web.AppRunner, Running]:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    real_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, Running(f"http://{host}:{real_port}", app)


@contextlib.asynccontextmanager
async def running_emulator(
    config: Optional[EmulatorConfig] = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Running]:
    runner, running = await _start(config, host, port)
    try:
        yield running
    finally:
        await runner.cleanup()


class EmulatorThread:
    """The emulator in a daemon thread, for code that has no event loop of its own."""

    def __init__(self, config: Optional[EmulatorConfig] = None, host: str = "127.0.0.1") -> None:
        self.config = config
        self.host = host
        self.running: Optional[Running] = None
        self._loop = asyncio.new_event_loop()
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None

    def start(self) -> str:
        ready = threading.Event()
        failure: list = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._runner, self.running = self._loop.run_until_complete(
                    _start(self.config, self.host, 0)
                )
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="vt-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        assert self.running is not None
        return self.running.url

    def stop(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None


def serve(host: str, port: int, config: Optional[EmulatorConfig] = None) -> None:
    """Blocking: `vtconnect emulator`. Prints the URL (the real port when port is 0) and stops
    on SIGINT/SIGTERM."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    real_port = sock.getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{real_port}"

    def announce(_: object) -> None:
        print(
            f"VirusTotal API emulator on {url} (set VT_API_URL={url}); emulator data only",
            flush=True,
        )

    web.run_app(create_app(config), sock=sock, access_log=None, print=announce)
