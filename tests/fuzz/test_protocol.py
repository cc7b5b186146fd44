"""Protocol fuzzing with hypothesis: raw request lines, headers and bodies, framed well or
badly, sent over a real socket to both server parts. Every answer must be HTTP, never a 5xx, an
error in the part's JSON shape; nothing may log a traceback and /healthz stays fast."""

from __future__ import annotations

import json
import re
import socket
from typing import List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import campaign
from .conftest import ERROR_KEYS, EXAMPLES, seed_inbox

PATHS = [
    b"/", b"/healthz", b"/openapi.json", b"/metrics", b"/v1/alerts/generic", b"/v1/alerts/auto",
    b"/v1/alerts/elastic?wait=1", b"/v1/alerts/splunk/tok", b"/v1/jobs/x?token=y", b"/taxii2/",
    b"/api/", b"/api/collections/", f"/api/collections/{campaign.INBOX}/objects/".encode(),
    f"/api/collections/{campaign.FEED}/manifest/?limit=1".encode(),
    f"/api/collections/{campaign.INBOX}/objects/?added_after=2000-01-01T00:00:00Z".encode(),
    f"/api/collections/{campaign.FEED}/objects/indicator--00000000-0000-4000-8000-000000000000/"
    .encode(),
    b"/api/status/00000000-0000-4000-8000-000000000000/",
    f"/feeds/{campaign.FEED}/all.csv".encode(), b"/%", b"/..%2f..%2f", b"*", b"http://x/",
]  # fmt: skip
AUTH = {"webhook": f"Bearer {campaign.TOKEN}", "taxii": campaign.basic()}
NAMES = [b"Content-Type", b"Accept", b"Expect", b"Connection", b"Transfer-Encoding",
         b"Content-Length", b"Host", b"Authorization", b"webhook-id", b"X-Webhook-Token",
         b"Range", b"Upgrade", b"Cookie"]  # fmt: skip
VALUES = [b"application/json", b"application/taxii+json;version=2.1", b"*/*", b"text/html",
          b"100-continue", b"close", b"keep-alive", b"chunked", b"gzip, chunked", b"websocket",
          b"items 0-10", b"", b"\xff\xfe", b"a" * 300,
          # TAXII 2.0 (FortiGate, taxii2-client v20): its media types and Range windows
          b"application/vnd.oasis.stix+json; version=2.0",
          b"application/vnd.oasis.taxii+json; version=2.0",
          b"application/vnd.oasis.taxii+json; version=2.0, application/taxii+json;version=2.1",
          b"items=0-3", b"items 3-1", b"items 99999-99999", b"items 0-9999999999999999",
          b"items -1-2", b"items 0-1, items 4-5"]  # fmt: skip
# Left out of the campaign: invalid gzip/deflate bodies (issue 10, item 5) and malformed Basic
# credentials (item 1) are fixed separately; valid credentials are sent instead.
EXCLUDED = (b"content-encoding", b"authorization")

methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH",
                           b"TRACE", b"CONNECT", b"PRI"]) | st.binary(max_size=10)  # fmt: skip
targets = (
    st.sampled_from(PATHS)
    | st.binary(max_size=60).map(lambda b: b"/" + b)
    | st.text(max_size=30).map(lambda t: ("/" + t).encode("utf-8", "surrogatepass"))
    | st.tuples(st.sampled_from(PATHS), st.binary(max_size=30)).map(lambda t: t[0] + b"?" + t[1])
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.1 x",
                            b"http/1.1", b""]) | st.binary(max_size=10)  # fmt: skip
headers = st.lists(
    st.tuples(
        st.sampled_from(NAMES) | st.binary(max_size=20),
        st.sampled_from(VALUES) | st.binary(max_size=80),
    ).filter(lambda h: h[0].strip().lower() not in EXCLUDED),
    max_size=8,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.sampled_from(["8.8.8.8", "example.com", "44d88612fea8a8f36de82e1278abb02f",
                       "http://example.org/x", "198.51.100.7"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
bodies = st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode())
BAD_LENGTHS = [b"-1", b"1e3", b"0x10", b" 5", b"99999999999999999999", b"\xb2", b"1, 2"]
framings = st.sampled_from(["length", "none", "chunked", "bad-chunked", "bad-length"])


@st.composite
def requests(draw) -> Tuple[str, bytes]:
    part = draw(st.sampled_from(["webhook", "taxii"]))
    line = draw(methods) + b" " + draw(targets) + b" " + draw(versions)
    head: List[Tuple[bytes, bytes]] = [(b"Host", b"x")] if draw(st.booleans()) else []
    head += draw(headers)
    if draw(st.booleans()):
        head.append((b"Authorization", AUTH[part].encode()))
    body, framing = draw(bodies), draw(framings)
    if framing == "length":
        head.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "chunked":
        head.append((b"Transfer-Encoding", b"chunked"))
        body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "bad-chunked":
        head.append((b"Transfer-Encoding", b"chunked"))
        body = draw(st.binary(max_size=40)) + b"\r\n0\r\n\r\n"
    elif framing == "bad-length":
        head.append((b"Content-Length", draw(st.sampled_from(BAD_LENGTHS))))
    else:
        body = b""
    head.append((b"Connection", b"close"))
    raw = line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in head) + b"\r\n" + body
    return part, raw


def first_response(address, data: bytes) -> bytes:
    """The first complete answer (1xx interim answers skipped), or b"" when the server closes
    without one. Reading stops at the answer's length, not at close: a request smuggled behind
    ours could keep the connection open."""
    buf = b""
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end].decode("latin-1")
                if head.split(" ", 2)[1].startswith("1"):
                    buf = buf[head_end + 4 :]
                    continue
                length = [int(h.split(":", 1)[1]) for h in head.split("\r\n")[1:]
                          if h.lower().startswith("content-length:")]  # fmt: skip
                if length and len(buf) - head_end - 4 >= length[0]:
                    return buf
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return buf
            if not chunk:
                return buf
            buf += chunk


@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)  # fmt: skip
@given(request=requests())
def test_raw_requests_get_json_answers_and_no_tracebacks(target, request):
    part, data = request
    answer = first_response(target.served.address(part), data)
    what = f"{part} {data[:200]!r}"
    if not answer:  # a closed connection without an answer is only allowed for no request
        target.check_log(what)
        assert not data.split(b"\r\n", 1)[0].strip(), what
        return
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/"), f"{what}: {answer[:200]!r}"
    status = int(status_line.split(b" ", 2)[1])
    ctype = next((h.split(b":", 1)[1].strip().decode("latin-1") for h in head.split(b"\r\n")
                  if h.lower().startswith(b"content-type:")), "")  # fmt: skip
    if data.startswith(b"HEAD ") and status >= 400:  # no body to check
        body = json.dumps(dict.fromkeys(ERROR_KEYS[part], "")).encode()
    target.check(part, status, ctype, body, what)


V20_ACCEPT = [b"application/vnd.oasis.stix+json; version=2.0",
              b"application/vnd.oasis.taxii+json; version=2.0",
              b"application/vnd.oasis.stix+json", b"application/vnd.oasis.taxii+json"]  # fmt: skip
numbers = st.integers(0, 10**16).map(lambda n: str(n).encode()) | st.binary(max_size=6)
ranges = (
    st.tuples(st.sampled_from([b"items ", b"items=", b"items  ", b"bytes=", b"ITEMS ", b""]),
              numbers, st.sampled_from([b"-", b" - ", b"--", b","]), numbers)
    .map(b"".join)
    | st.binary(max_size=40)
)  # fmt: skip


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)  # fmt: skip
@given(path=st.sampled_from([b"objects/", b"manifest/"]), accept=st.sampled_from(V20_ACCEPT),
       window=ranges, collection=st.sampled_from([campaign.INBOX, campaign.FEED]))  # fmt: skip
def test_taxii20_range_windows(target, path, accept, window, collection):
    """TAXII 2.0 paging by Range over a real socket: any Range gives 200, 206 with a
    Content-Range inside the collection, 400 or 416, always in 2.0's media type."""
    seed_inbox(target)
    target_line = b"GET /api/collections/" + collection.encode() + b"/" + path + b" HTTP/1.1"
    head_lines = [target_line, b"Host: x", b"Accept: " + accept, b"Range: " + window,
                  b"Authorization: " + AUTH["taxii"].encode(), b"Connection: close"]  # fmt: skip
    data = b"\r\n".join(head_lines) + b"\r\n\r\n"
    answer = first_response(target.served.address("taxii"), data)
    what = f"taxii {data[:300]!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if status == 400 and b"malformed HTTP request" in body:  # bytes HTTP refuses (a NUL):
        target.check("taxii", status, fields["content-type"], body, what)  # no Accept to read
        return
    assert status in (200, 206, 400, 416), f"{what}: {status} {body[:200]!r}"
    v20_types = ("application/vnd.oasis.stix+json", "application/vnd.oasis.taxii+json")
    assert fields["content-type"].startswith(v20_types), what
    if status == 206:
        m = re.match(r"^items (\d+)-(\d+)/(\d+)$", fields["content-range"])
        assert m and int(m.group(1)) <= int(m.group(2)) < int(m.group(3)), what
    target.check("taxii", status, fields["content-type"], body, what)
