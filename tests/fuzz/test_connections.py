"""Idle, slow and malformed connections against a real `vtconnect serve` process (issue 10,
items 9 and 10): both parts close idle and slow sockets, cap open connections with a JSON 503,
survive running out of file descriptors, and answer malformed requests with their JSON error
while logging one line per client, never a traceback."""

from __future__ import annotations

import json
import os
import resource
import socket
import time

import pytest

from ..processes import raw_exchange
from . import campaign

PARTS = ("webhook", "taxii")
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
ERROR_KEYS = {"webhook": {"error", "message"}, "taxii": {"title", "description", "http_status"}}


def served_with(tmp_path, emulator_url, server: str, **kw):
    return campaign.start(tmp_path, emulator_url, campaign.config_text(tmp_path, server), **kw)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (EOF or reset) before `seconds` pass."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def split(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body


def assert_error(part: str, answer: bytes, status: int) -> None:
    got, head, body = split(answer)
    assert got == status, answer[:300]
    assert set(json.loads(body)) == ERROR_KEYS[part], body


def test_idle_and_slow_connections_are_closed(tmp_path, emulator_url):
    srv = served_with(tmp_path, emulator_url, "keepalive_timeout = 1\nheader_timeout = 1")
    try:
        for part in PARTS:
            idle = socket.create_connection(srv.address(part))
            # A keep-alive connection that has answered a request and then sits idle.
            reused = socket.create_connection(srv.address(part))
            reused.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reused.recv(4096).startswith(b"HTTP/1.1 ")
            assert closed_within(idle, 8) and closed_within(reused, 8), part
            idle.close()
            reused.close()
    finally:
        srv.stop()
    srv = served_with(tmp_path, emulator_url, "keepalive_timeout = 60\nheader_timeout = 1")
    try:
        for part in PARTS:
            with socket.create_connection(srv.address(part)) as slow:
                slow.sendall(b"GET /healthz HTTP/1.1\r\n")
                slow.settimeout(0.2)
                closed = False
                for _ in range(40):  # one header byte per 0.2 s keeps a naive server waiting
                    try:
                        slow.sendall(b"X")
                        if slow.recv(1) == b"":
                            closed = True
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        closed = True
                        break
                assert closed, f"{part}: a trickle of header bytes held the connection"
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


def test_connection_cap_answers_503_and_idle_sockets_never_lock_clients_out(tmp_path, emulator_url):
    srv = served_with(tmp_path, emulator_url, "max_connections = 20\nheader_timeout = 60")
    try:
        for part in PARTS:
            # 300 idle sockets: each new client takes an idle one's place.
            idle = [socket.create_connection(srv.address(part)) for _ in range(300)]
            campaign.healthz_ms(srv, part)  # a 200
            for s in idle:
                s.close()
            time.sleep(0.5)  # the server sees the closes
            # Connections that have started a request are not cut: beyond them, a 503.
            busy = []
            for _ in range(20):
                s = socket.create_connection(srv.address(part))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers not finished
                busy.append(s)
                time.sleep(0.02)  # received before the next one connects
            answer = raw_exchange(srv.address(part), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert_error(part, answer, 503)
            assert b"Retry-After: 1" in answer
            for s in busy:
                s.close()
            deadline = time.monotonic() + 5
            while True:  # the server sees the closes a moment later
                answer = raw_exchange(srv.address(part), HEALTHZ)
                if answer.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count fds")
def test_out_of_file_descriptors_is_one_line_not_a_traceback_per_accept(tmp_path, emulator_url):
    limit = 120

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    srv = served_with(tmp_path, emulator_url, "max_connections = 5000", preexec_fn=lower_limit)
    try:
        assert open_files(srv.pid) < limit - 20  # room for the test's first requests
        held = []
        for _ in range(limit + 50):  # more than the process can accept
            held.append(socket.create_connection(srv.address("webhook")))
        time.sleep(2.5)  # asyncio retries accepting every second
        log = srv.log()
        assert "event=accept_failed" in log
        assert "Traceback" not in log, log[-3000:]
        assert log.count("accept_failed") <= 2
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while True:  # the queued connections are accepted (and close) once fds are free
            try:
                if campaign.healthz_ms(srv) < 100:
                    break
            except (AssertionError, OSError):
                pass
            assert time.monotonic() < deadline, "no /healthz after the descriptors were freed"
            time.sleep(0.2)
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


MALFORMED = [
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40),  # TLS to plain HTTP
    b"GET / HTTP/1.1\r\n\x00\r\n\r\n",
]


def test_malformed_requests_are_json_400s_and_one_log_line_per_client(tmp_path, emulator_url):
    srv = served_with(tmp_path, emulator_url, "")
    try:
        for part in PARTS:
            for _ in range(5):
                for data in MALFORMED:
                    answer = raw_exchange(srv.address(part), data)
                    status, head, _ = split(answer)
                    assert 400 <= status < 500, (data[:60], answer[:200])
                    assert_error(part, answer, status)
            assert min(campaign.healthz_ms(srv, part) for _ in range(3)) < 100
        log = srv.log()
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
        for part in PARTS:
            assert log.count(f"event=bad_request part={part} ") == 1, log
    finally:
        srv.stop()


def test_example_server_section_is_the_defaults_and_bad_values_name_the_key():
    from pathlib import Path

    from connectors.connections import Limits, load_limits
    from connectors.core import config

    example = Path(__file__).resolve().parents[2] / "examples" / "vtconnect.toml"
    assert load_limits(config.load(str(example), env={}).raw) == Limits()
    for section, key in [
        ({"keepalive_timeout": 0}, "server.keepalive_timeout"),
        ({"header_timeout": "10"}, "server.header_timeout"),
        ({"max_connections": 1.5}, "server.max_connections"),
        ({"max_connections": True}, "server.max_connections"),
        ({"log_every": float("inf")}, "server.log_every"),
        ({"max_conections": 5}, "server.max_conections"),
    ]:
        with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
            load_limits({"server": section})
