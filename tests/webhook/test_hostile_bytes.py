"""Bytes no client library would send, written straight to the socket: header values that are
not UTF-8 and JSON that Python accepts but JSON does not (NaN, Infinity). Each is a clear 4xx
JSON answer, never a 500, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from connectors.webhook import auth

from .test_receiver import BEARER, SECRET, post

# aiohttp hands header bytes that are not UTF-8 over as lone surrogates (surrogateescape), which
# st.text() never generates by default: these strategies do.
ANY_CHARS = st.text(st.characters(blacklist_categories=()), max_size=40)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["Authorization", "X-Hub-Signature-256", "webhook-id", "webhook-timestamp",
         "webhook-signature", "X-Webhook-Token"]
    ),
    ANY_CHARS | st.sampled_from(["Bearer \udcff", "Basic \udcff", "sha256=\udcff", "v1,\udcff"]),
    max_size=6,
)  # fmt: skip


async def send_raw(url: str, path: str, headers: bytes, body: bytes = b"{}"):
    """(status, JSON answer) for a request written byte for byte."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    writer.write(head + headers + b"\r\n" + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head_part, _, payload = data.partition(b"\r\n\r\n")
    return int(head_part.split()[1]), json.loads(payload)


async def test_header_bytes_that_are_not_utf8_are_401(receiver):
    url, _ = await receiver()
    now = str(int(time.time())).encode()
    cases = [
        ("small", b"X-Webhook-Token: \xff\xfe\r\n", "X-Webhook-Token"),
        ("bearer", b"Authorization: Bearer \xff\xfe\r\n", "bearer"),
        ("basic", b"Authorization: Basic \xff\r\n", "Basic"),
        ("hub", b"X-Hub-Signature-256: sha256=\xff\r\n", "X-Hub-Signature-256"),
        (
            "std",
            b"webhook-id: m\xff\r\nwebhook-timestamp: " + now + b"\r\nwebhook-signature: v1,x\r\n",
            "webhook-id",
        ),
        (
            "std",
            b"webhook-id: m1\r\nwebhook-timestamp: " + now + b"\r\nwebhook-signature: v1,\xff\r\n",
            "webhook-signature",
        ),
    ]
    for source, headers, word in cases:
        status, answer = await send_raw(url, f"/v1/alerts/generic?source={source}", headers)
        assert status == 401 and answer["error"] == "unauthorized", (source, answer)
        assert word in answer["message"], (source, answer)
    status, answer = await send_raw(url, "/v1/alerts/splunk/%FF%FE?source=splunkurl", b"")
    assert status == 401 and "URL" in answer["message"]
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        assert (await r.json())["jobs"] == {}


async def test_nan_and_infinity_are_400_in_both_modes(receiver):
    url, _ = await receiver()
    bodies = [b'{"hash": NaN}', b'{"x": 1e999}', b'{"x": -Infinity}', b'"{\\"x\\": NaN}"']
    for body in bodies:
        for query in ("?source=bearer&wait=5", "?source=bearer"):
            status, answer = await post(url, "/v1/alerts/generic" + query, body, BEARER)
            assert status == 400 and answer["error"] == "bad_payload", (body, answer)
    # a large but finite number is still fine, and the answer is strict JSON
    status, answer = await post(url, "/v1/alerts/generic?wait=5", b'{"x": 1e308}', BEARER)
    assert status == 200 and answer["x"] == 1e308
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        assert (await r.json())["jobs"] == {}


@hsettings(max_examples=300, deadline=None)
@given(st.sampled_from(auth.SCHEMES if hasattr(auth, "SCHEMES") else
                       ("standard", "github", "bearer", "header", "basic", "url")),
       HEADERS, st.binary(max_size=40), st.none() | ANY_CHARS)  # fmt: skip
@example("header", {"X-Webhook-Token": "\udcff\udcfe"}, b"", None)
@example("bearer", {"Authorization": "Bearer \udcff"}, b"", None)
@example("url", {}, b"", "\udcff")
@example("standard", {"webhook-id": "\udcff", "webhook-timestamp": str(int(time.time())),
                      "webhook-signature": "v1,x"}, b"", None)  # fmt: skip
def test_surrogates_in_headers_or_token_are_autherror(scheme, headers, body, token):
    try:
        auth.verify(scheme, "whsec_" + "QUJD" * 8, headers, body, token, "X-Webhook-Token",
                    "siem", auth.ReplayGuard())  # fmt: skip
    except auth.AuthError:
        return
    raise AssertionError(f"{scheme} let {headers!r} / {token!r} through")


async def test_chunked_body_over_the_limit_is_413_and_rate_limit_says_when(receiver):
    url, _ = await receiver()

    async def chunks(n: int):
        yield b'{"message": "'
        for _ in range(n):
            yield b"x" * 65536
        yield b'"}'

    async with aiohttp.ClientSession() as s:
        for path, headers, n in (
            ("/v1/alerts/generic?source=bearer", BEARER, 40),  # 2.5 MiB > the 1 MiB default
            ("/v1/alerts/generic?source=small", {"X-Webhook-Token": SECRET}, 1),
        ):
            h = {"Content-Type": "application/json", **headers}
            async with s.post(url + path, data=chunks(n), headers=h) as r:
                assert r.status == 413 and "Content-Length" not in r.request_info.headers
                assert (await r.json())["error"] == "too_large"
        async with s.post(
            url + "/v1/alerts/generic?source=bearer", data=b"<a/>",
            headers={**BEARER, "Content-Type": "application/xml"},
        ) as r:  # fmt: skip
            assert r.status == 415 and (await r.json())["error"] == "unsupported_media_type"
        small = {"X-Webhook-Token": SECRET, "Content-Type": "application/json"}
        for _ in range(4):  # "small" takes 3 a minute (the 413 above did not count)
            async with s.post(
                url + "/v1/alerts/generic?source=small", data=b"{}", headers=small
            ) as r:
                status, retry = r.status, r.headers.get("Retry-After")
                answer = await r.json()
        assert status == 429 and answer["error"] == "rate_limited"
        assert retry is not None and 1 <= int(retry) <= 61
        async with s.get(url + "/healthz") as r:
            # the 413s stored nothing; the three {} accepted are one body, so one job
            assert sum((await r.json())["jobs"].values()) == 1


async def test_a_stalled_body_is_408_and_stores_nothing(receiver):
    from connectors.webhook.app import RECEIVER

    url, runner = await receiver()
    runner.app[RECEIVER].body_timeout = 0.5
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/alerts/auto HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + SECRET.encode() + b"\r\n"
        b'Content-Length: 1000\r\nConnection: close\r\n\r\n{"alert": '
    )  # ... and nothing more: 990 bytes promised never come
    await writer.drain()
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(4096), 10)  # answered while the rest never came
    writer.close()
    assert int(data.split()[1]) == 408 and b'"timeout"' in data
    assert time.monotonic() - started < 5
    assert runner.app[RECEIVER].outbox.counts() == {}


def _unflatten_recursive(doc):
    """The recursive unflatten of earlier versions: the reference for the one without recursion."""
    out: dict = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            value = _unflatten_recursive(value)
        if "." not in key or key.startswith(".") or key.endswith("."):
            _merge_recursive(out, key, value)
            continue
        parts, node = key.split("."), out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    node = None
                    break
                nxt = node[part] = {}
            node = nxt
        if node is None:
            out[key] = value
        else:
            _merge_recursive(node, parts[-1], value)
    return out


def _merge_recursive(node, key, value):
    if isinstance(node.get(key), dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge_recursive(node[key], k, v)
    else:
        node[key] = value


FLAT_KEYS = st.sampled_from(["a", "b", "a.b", "a.b.c", "b.a", ".a", "a.", "a..b", "c", "a.c"])
FLAT_DOCS = st.recursive(
    st.integers(0, 3) | st.text(max_size=3),
    lambda inner: st.dictionaries(FLAT_KEYS, inner, max_size=5) | st.lists(inner, max_size=2),
    max_leaves=25,
)


@hsettings(max_examples=400, deadline=None)
@given(st.dictionaries(FLAT_KEYS, FLAT_DOCS, max_size=6))
def test_unflatten_without_recursion_keeps_what_unflatten_did(doc):
    from connectors.webhook.payload import unflatten

    assert unflatten(doc) == _unflatten_recursive(doc)


def test_deep_documents_are_walked_without_recursion():
    from connectors.webhook import formats, payload

    deep: dict = {"ip": "203.0.113.9"}
    for _ in range(5000):
        deep = {"k": deep}
    assert formats.structured(deep) == ["203.0.113.9"]
    assert formats.structured(payload.unflatten(deep)) == ["203.0.113.9"]  # no recursion
    for body in (
        json.dumps({".".join(["k"] * 5000): "8.8.8.8"}),
        json.dumps({".".join(["k"] * 40): {".".join(["k"] * 40): "8.8.8.8"}}),
    ):
        try:
            payload.decode(body.encode())
        except payload.PayloadError as exc:
            assert "dotted parts" in str(exc) or "deeper than" in str(exc)
        else:
            raise AssertionError("a document deeper than MAX_DEPTH once unflattened")
