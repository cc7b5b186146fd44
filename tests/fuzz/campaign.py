"""The fuzz campaigns' server: `vtconnect serve --webhook --taxii` as a real process (started
with tests/processes.py), its configuration and credentials, for tests that attack both server
parts over real sockets."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

from taxii.config import hash_password

from ..processes import Served, env_for, raw_exchange

TOKEN = "fuzz-token-0123456789abcdef"  # the webhook source's bearer token
USER, PASSWORD = "analyst", "fuzz password 0123"
FEED = str(uuid.UUID(int=0x4C3D2E1F0A9B4C7D8E9F0A1B2C3D4E5F, version=4))  # public read
INBOX = str(uuid.UUID(int=0x5D4E3F2A1B0C4D8E9FA0B1C2D3E4F5A6, version=4))  # analyst only


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


def start(
    tmp: Path,
    emulator_url: str,
    text: Optional[str] = None,
    preexec_fn: Optional[Callable[[], None]] = None,
) -> Served:
    """`vtconnect serve --webhook --taxii` with `text` (default: `config_text`), both parts
    listening; its log in `tmp`."""
    cfg = tmp / "vtconnect.toml"
    cfg.write_text(text if text is not None else config_text(tmp))
    env = env_for(cfg, emulator_url, tmp)
    served = Served(["serve", "--webhook", "--taxii"], env, tmp / "serve.log", preexec_fn)
    served.wait_listening(2)
    return served


def healthz_ms(served: Served, part: str = "webhook") -> float:
    """Milliseconds for GET /healthz on a fresh connection; raises when there is no 200."""
    started = time.monotonic()
    answer = raw_exchange(
        served.address(part), b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    took = (time.monotonic() - started) * 1000
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    return took
