"""The three ways to run the emulator: async context manager, thread, blocking process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import vt

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import EmulatorThread, running_emulator


def fetch(url: str, key: str = "k") -> dict:
    req = urllib.request.Request(url, headers={"X-Apikey": key})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["X-VT-Emulator"] == "1"
        return json.loads(r.read())


async def test_running_emulator_binds_an_ephemeral_port_and_cleans_up():
    async with running_emulator() as emu:
        assert emu.url.startswith("http://127.0.0.1:") and not emu.url.endswith(":0")
        async with vt.Client("k", host=emu.url) as client:
            assert (await client.get_json_async("/domains/example.com"))["meta"]["emulator"]
        url = emu.url
    try:
        urllib.request.urlopen(url + "/_emulator/health", timeout=1)
        raise AssertionError("still serving after exit")
    except OSError:
        pass


def test_emulator_thread_serves_sync_code():
    thread = EmulatorThread(EmulatorConfig(default_tier="premium"))
    url = thread.start()
    try:
        assert fetch(url + "/api/v3/domains/example.org")["data"]["id"] == "example.org"
        with vt.Client("k", host=url) as client:  # vt-py's sync API, no loop of our own
            assert client.get_json("/ip_addresses/203.0.113.66")["data"]["id"] == "203.0.113.66"
    finally:
        thread.stop()


def test_serve_prints_its_url_and_blocks():
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.emulator", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert fetch(url + "/_emulator/health")["ok"] is True
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


async def test_bodies_that_do_not_decompress_are_400_without_a_traceback(emu, caplog):
    """Content-Encoding gzip with data that is not gzip, on an API call and on a control
    endpoint: a JSON 400 and the connection closed, never a 500 or aiohttp's traceback."""
    import asyncio
    import json

    port = int(emu.url.rsplit(":", 1)[1])
    for path, key in (("/api/v3/urls", b"X-Apikey: k\r\n"), ("/_emulator/faults", b"")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
            + key + b"Content-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip....",
        )  # fmt: skip
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # the server closes the connection
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), raw[:200]
        assert json.loads(body)["error"]["code"] == "InvalidArgumentError"
    await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.exc_info], caplog.text
