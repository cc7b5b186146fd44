"""A TAXII server on an ephemeral loopback port, in its own thread and event loop (taxii2-client
is synchronous)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from aiohttp import web

from connectors.core import config
from taxii.config import hash_password
from taxii.server import build_app

FEED = str(uuid.UUID(int=0x1F0E8C6A5B4D4E3FA2B1C0D9E8F7A6B5, version=4))
INBOX = str(uuid.UUID(int=0x2A1B0C9D8E7F4A5B9C8D7E6F5A4B3C2D, version=4))
OPEN = str(uuid.UUID(int=0x3B2C1D0E9F8A4B6C8D9E0F1A2B3C4D5E, version=4))
PASSWORD = "correct horse battery staple"
TOKEN = "feed-token-0123456789"


def taxii_doc(tmp_path):
    import hashlib

    return {"taxii": {
        "page_size": 50, "max_page_size": 100, "max_body_bytes": 200_000,
        "store": str(tmp_path / "taxii.db"), "poll_seconds": 0.05,
        "collections": [
            {"id": FEED, "title": "VirusTotal malicious", "read": ["*"], "write": ["analyst"],
             "publish": ["malicious", "suspicious"], "test": True},  # fed by the emulator
            {"id": INBOX, "title": "Inbox", "read": ["analyst"], "write": ["analyst"],
             "test": True},
            {"id": OPEN, "title": "Public", "public": True, "test": True},
        ],
        "users": [{"name": "analyst", "password_hash": hash_password(PASSWORD, 1000)},
                  {"name": "firewall", "password_hash": hash_password("fw-pass", 1000)}],
        "tokens": [{"sha256": hashlib.sha256(TOKEN.encode()).hexdigest(), "user": "firewall"}],
    }}  # fmt: skip


class ServerThread:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self.url

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def taxii_settings(emulator_url, tmp_path):
    doc = {"quota": {"tier": "unlimited"}, **taxii_doc(tmp_path)}
    return config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))


@pytest.fixture
def plain_settings(tmp_path):
    """For the server alone (no enricher): VirusTotal is never called, so no emulator."""
    doc = {"quota": {"tier": "unlimited"}, **taxii_doc(tmp_path)}
    return config.for_emulator(
        config.from_mapping(doc, env={}), "http://127.0.0.1:9", str(tmp_path)
    )


@pytest.fixture
def server(plain_settings):
    srv = ServerThread(build_app(plain_settings, None))
    srv.start()
    yield srv
    srv.stop()
