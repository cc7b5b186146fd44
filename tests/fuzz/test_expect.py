"""`Expect: 100-continue` against a real `vtconnect serve` (issue 10, item 12): a body that
would be refused is refused before the client is invited to send it; a good one is invited."""

from __future__ import annotations

import json
import socket

import pytest

from . import campaign


@pytest.fixture(scope="module")
def served(tmp_path_factory, emulator_url):
    tmp = tmp_path_factory.mktemp("expect")
    srv = campaign.start(tmp, emulator_url)
    yield srv
    srv.stop()


def first_answer(address, head: bytes) -> bytes:
    """Send only the request head and read what comes back before any body is sent."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head)
        return sock.recv(65536)


def alert_head(length: int, extra: str = "", path: str = "/v1/alerts/generic") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {campaign.TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
        f"Expect: 100-continue\r\n{extra}\r\n"
    ).encode()


def taxii_head(length: int) -> bytes:
    return (
        f"POST /api/collections/{campaign.INBOX}/objects/ HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {campaign.basic()}\r\nContent-Type: application/taxii+json;version=2.1"
        f"\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()


def test_oversized_body_is_refused_before_100_continue(served):
    answer = first_answer(served.address("webhook"), alert_head(10_000_000))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "too_large"
    answer = first_answer(served.address("taxii"), taxii_head(10_000_000))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["http_status"] == "413"


@pytest.mark.parametrize(
    "head, status",
    [
        (alert_head(10, path="/v1/alerts/nosuchformat"), b"404"),
        (alert_head(10).replace(b"application/json", b"text/html"), b"415"),
        (alert_head(10).replace(b"100-continue", b"200-ok"), b"417"),
    ],
)
def test_other_refusals_come_before_the_body_too(served, head, status):
    answer = first_answer(served.address("webhook"), head)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert set(json.loads(answer.partition(b"\r\n\r\n")[2])) == {"error", "message"}


def test_acceptable_body_is_invited_then_accepted(served):
    body = json.dumps({"alert": "x", "ip": "198.51.100.7"}).encode()
    with socket.create_connection(served.address("webhook"), timeout=5) as sock:
        sock.sendall(alert_head(len(body), "Connection: close\r\n"))
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert "Traceback" not in served.log()
