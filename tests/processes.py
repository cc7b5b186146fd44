"""`vtconnect serve` (and other `vtconnect` commands) as real processes on ephemeral ports,
started and stopped by PID, and HTTP requests written byte for byte to a socket: what hostile
clients send, no client library in between. The fuzz campaigns start their server with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

EXE = os.path.join(os.path.dirname(sys.executable), "vtconnect")
LISTENING = re.compile(r"([\w-]+) listening on (https?://[^\s\"']+)")  # from the CLI or a log line


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
    """A running `vtconnect` command (`serve ...`), known by its PID, its URLs read from its
    "<part> listening on <url>" lines ({"taxii": ..., "webhook": ...}, ephemeral ports). Its
    stderr goes to the file `log`, not a pipe: a flood of log lines must not block it."""

    def __init__(
        self,
        args: Sequence[str],
        env: Dict[str, str],
        log: Path,
        preexec_fn: Optional[Callable[[], None]] = None,
    ) -> None:
        self.log_path = log
        self.urls: Dict[str, str] = {}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [EXE, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=out, preexec_fn=preexec_fn,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, parts: int, timeout: float = 30) -> Dict[str, str]:
        """The URLs once `parts` parts listen; stopped, with its log in the error, if not."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            for line in self.log().splitlines():  # from the log and from the CLI
                m = LISTENING.search(line)
                if m:
                    self.urls[m.group(1)] = m.group(2)
            if len(self.urls) >= parts:
                return self.urls
            time.sleep(0.05)
        self.stop()
        raise AssertionError("vtconnect serve did not start:\n" + self.log())

    def address(self, part: str) -> Tuple[str, int]:
        host, port = self.urls[part].split("//", 1)[1].rstrip("/").rsplit(":", 1)
        return host, int(port)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not ended within 20 s; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def raw_exchange(address: Tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
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
    reply = raw_exchange((host, int(port)), data, timeout)
    assert reply, f"no answer to {head[:200]!r}"
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
