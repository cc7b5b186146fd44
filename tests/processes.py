"""`vtconnect serve` (and other `vtconnect` commands) as real processes, and HTTP requests
written byte for byte to a socket: what hostile clients send, no client library in between."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

EXE = os.path.join(os.path.dirname(sys.executable), "vtconnect")


def env_for(cfg: Path, emulator_url: str, state: Path, key: str = "k") -> Dict[str, str]:
    return dict(
        os.environ,
        VTCONNECT_CONFIG=str(cfg),
        VT_API_URL=emulator_url,
        VT_API_KEY=key,
        XDG_STATE_HOME=str(state),
    )


def run(
    args: Sequence[str], env: Dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """A `vtconnect` command to its end: (returncode, stdout, stderr)."""
    return subprocess.run(
        [EXE, *args], env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


class Served:
    """A running `vtconnect serve`; stderr is collected by a thread so it never blocks."""

    def __init__(self, args: Sequence[str], env: Dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [EXE, *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: List[str] = []
        self.urls: Dict[str, str] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_listening(self, parts: int, timeout: float = 30) -> Dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            # "<part> listening on <url>", from the log and from the CLI
            for line in list(self.lines):
                if " listening on " in line:
                    name = line.split(" listening on ")[0].split()[-1]
                    self.urls[name] = line.strip().rsplit(" ", 1)[-1]
            if len(self.urls) >= parts:
                return self.urls
            time.sleep(0.05)
        raise AssertionError("vtconnect serve did not start:\n" + self.stderr)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        return self.proc.returncode


def raw_request(
    url: str, head: bytes, body: bytes = b"", timeout: float = 15
) -> Tuple[int, Dict[str, str], bytes]:
    """Write `head` (request line and headers, without the blank line) and `body` as they are;
    (status, headers, body) of the answer. Content-Length and Connection: close are added."""
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    data = head.rstrip(b"\r\n") + b"\r\nHost: %s\r\nConnection: close\r\n" % host.encode()
    if body or head.startswith((b"POST", b"PUT")):
        data += b"Content-Length: %d\r\n" % len(body)
    data += b"\r\n" + body
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    head_part, _, payload = reply.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        payload = _dechunk(payload)
    return int(lines[0].split()[1]), headers, payload


def _dechunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def busy_port() -> Tuple[socket.socket, int]:
    """A listening socket on an ephemeral port (the caller closes it): a port in use."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def no_traceback(text: str) -> Optional[str]:
    """The offending line when `text` (a server's stderr) shows a traceback."""
    for line in text.splitlines():
        if "Traceback" in line or "Task exception was never retrieved" in line:
            return line
    return None
