"""`vtconnect serve --webhook --taxii` as a real process, its stderr kept in a file, for tests
that attack both server parts over real sockets."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Optional

from taxii.config import hash_password

TOKEN = "fuzz-token-0123456789abcdef"  # the webhook source's bearer token
USER, PASSWORD = "analyst", "fuzz password 0123"
FEED = str(uuid.UUID(int=0x4C3D2E1F0A9B4C7D8E9F0A1B2C3D4E5F, version=4))  # public read
INBOX = str(uuid.UUID(int=0x5D4E3F2A1B0C4D8E9FA0B1C2D3E4F5A6, version=4))  # analyst only
READY = re.compile(r"^(taxii|webhook) listening on (\S+)$")


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def config_text(tmp: Path, server: str = "", webhook: str = "", source: str = "") -> str:
    return f"""
[core]
state_dir = "{tmp / "state"}"
[quota]
tier = "unlimited"
[privacy]
allow_documentation_ranges = true
[server]
{server}
[taxii]
port = 0
max_body_bytes = 200000
[[taxii.collections]]
id = "{FEED}"
title = "Feed"
public = true
write = ["{USER}"]
[[taxii.collections]]
id = "{INBOX}"
title = "Inbox"
read = ["{USER}"]
write = ["{USER}"]
[[taxii.users]]
name = "{USER}"
password_hash = "{hash_password(PASSWORD, 1000)}"
[webhook]
port = 0
{webhook}
[[api.clients]]
name = "fuzz-client"
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
[[webhook.sources]]
name = "siem"
format = "auto"
auth = "bearer"
secret = "{TOKEN}"
max_body_bytes = 100000
rate_per_minute = 1000000
{source}
"""


class Served:
    """The process, its URLs ({"taxii": ..., "webhook": ...}) and its log."""

    def __init__(self, proc: subprocess.Popen, urls: Dict[str, str], log: Path) -> None:
        self.proc, self.urls, self.log_path = proc, urls, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def address(self, part: str):
        host, port = self.urls[part].split("//", 1)[1].rsplit(":", 1)
        return host, int(port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(
    tmp: Path,
    emulator_url: str,
    text: Optional[str] = None,
    preexec_fn: Optional[Callable[[], None]] = None,
) -> Served:
    cfg = tmp / "vtconnect.toml"
    cfg.write_text(text if text is not None else config_text(tmp))
    log = tmp / "serve.log"
    env = dict(os.environ, VTCONNECT_CONFIG=str(cfg), VT_API_URL=emulator_url, VT_API_KEY="k")
    exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
    with open(log, "wb") as out:  # a file, not a pipe: a flood of log lines must not block it
        proc = subprocess.Popen(
            [exe, "serve", "--webhook", "--taxii"], env=env, stderr=out, preexec_fn=preexec_fn
        )
    urls: Dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(urls) < 2 and time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            m = READY.match(line.strip())
            if m:
                urls[m.group(1)] = m.group(2)
        time.sleep(0.05)
    served = Served(proc, urls, log)
    if len(urls) < 2:
        served.stop()
        raise AssertionError("vtconnect serve did not start:\n" + served.log())
    return served


def raw_exchange(address, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read the answer until the server closes (or
    `timeout`). No half-close: asyncio closes a connection at EOF before any answer."""
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server may answer and close before reading it all
            pass
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def healthz_ms(served: Served, part: str = "webhook") -> float:
    """Milliseconds for GET /healthz on a fresh connection; raises when there is no 200."""
    started = time.monotonic()
    answer = raw_exchange(
        served.address(part), b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    took = (time.monotonic() - started) * 1000
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    return took
