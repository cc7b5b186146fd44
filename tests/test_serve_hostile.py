"""Hostile bytes over a real socket to a real `vtconnect serve --taxii --webhook` process: each
is a JSON 4xx (never a 500), what is accepted stays strict JSON for every consumer, and the
server's stderr shows no traceback at the end."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import pytest

from taxii.config import hash_password

from .processes import Served, env_for, no_traceback, raw_request
from .taxii.test_server import indicators

COLL = "5d0c3f2e-8a71-4b2c-9e4d-3f6a1b2c7d8e"
USER, PASSWORD = "analyst", "correct horse battery staple"
AUTH = b"Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()) + b"\r\n"
TAXII_JSON = b"Content-Type: application/taxii+json;version=2.1\r\n"
DEEP_KEY = ".".join(["k"] * 5000)


@pytest.fixture(scope="module")
def served(emulator_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    cfg = tmp / "vtconnect.toml"
    cfg.write_text(
        f"""
[quota]
tier = "unlimited"
[taxii]
port = 0
[[taxii.collections]]
id = "{COLL}"
title = "Inbox"
read = ["{USER}"]
write = ["{USER}"]
[[taxii.users]]
name = "{USER}"
password_hash = "{hash_password(PASSWORD, 1000)}"
[webhook]
port = 0
[[webhook.sources]]
name = "open"
format = "generic"
auth = "none"
"""
    )
    proc = Served(
        ["serve", "--taxii", "--webhook"], env_for(cfg, emulator_url, tmp), tmp / "serve.log"
    )
    try:
        proc.wait_listening(2)
        yield proc
    finally:
        proc.stop()
    assert no_traceback(proc.log()) is None, proc.log()[-3000:]


def taxii_error(status, headers, body, code):
    assert status == code, body[:300]
    err = json.loads(body)
    assert err["http_status"] == str(code) and err["title"]
    assert headers["content-type"] == "application/taxii+json;version=2.1"


def strict(raw: bytes):
    """JSON as every consumer reads it: NaN, Infinity and lone surrogates are errors."""

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    doc = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    json.dumps(doc, allow_nan=False, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails
    return doc


ENDPOINTS = [
    "/taxii2/", "/api/", "/api/collections/", f"/api/collections/{COLL}/",
    f"/api/collections/{COLL}/objects/", f"/api/collections/{COLL}/manifest/",
    f"/api/collections/{COLL}/objects/indicator--00000000-0000-4000-8000-000000000000/",
    f"/api/collections/{COLL}/objects/indicator--00000000-0000-4000-8000-000000000000/versions/",
    "/api/status/x/", f"/feeds/{COLL}/all.csv",
]  # fmt: skip


@pytest.mark.parametrize("value", [b"\xc3\xa9", b"\xff\xfe", "é:x".encode(), b"\xc3\xa9=="])
def test_basic_credentials_that_are_not_base64_are_401_everywhere(served, value):
    for path in ENDPOINTS:
        status, headers, body = raw_request(
            served.urls["taxii"], b"GET " + path.encode() + b" HTTP/1.1\r\nAuthorization: Basic "
            + value + b"\r\n"
        )  # fmt: skip
        taxii_error(status, headers, body, 401)
        assert headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("query", [
    "limit=%C2%B2", "limit=" + "9" * 5000, "limit=%EF%BC%95",  # superscript 2, fullwidth 5
    "added_after=%EF%BC%92026-01-01T00:00:00Z", "added_after=2026-01-01T00:00:00Z%0Ax",
    "match[version]=%D9%A2026-01-01T00:00:00Z", "match[spec_version]=%D9%A2.1",
    "next=" + "9" * 5000, "added_after=" + "9" * 5000,
])  # fmt: skip
def test_numeric_and_time_parameters_in_other_scripts_or_huge_are_400(served, query):
    base = f"/api/collections/{COLL}/"
    one = "objects/indicator--00000000-0000-4000-8000-000000000000/"
    for endpoint in ("objects/", "manifest/", one, one + "versions/"):
        if query.startswith("match[") and endpoint != "objects/":
            continue  # match[...] filters differ per endpoint; objects/ takes them all
        head = f"GET {base}{endpoint}?{query} HTTP/1.1\r\n".encode() + AUTH
        taxii_error(*raw_request(served.urls["taxii"], head), 400)


def _post_objects(served, body: bytes, extra: bytes = b""):
    head = f"POST /api/collections/{COLL}/objects/ HTTP/1.1\r\n".encode() + AUTH + TAXII_JSON
    return raw_request(served.urls["taxii"], head + extra, body)


def _get(served, path: str):
    return raw_request(served.urls["taxii"], f"GET {path} HTTP/1.1\r\n".encode() + AUTH)


def test_non_finite_numbers_and_lone_surrogates_are_refused_per_object(served):
    good, nan, inf, big, lone, lone_key = indicators(6, start=700)
    good["labels"] = ["kept"]
    # The raw bytes a hostile producer sends: Python's json reads all of these.
    text = json.dumps({"objects": [good, nan, inf, big, lone, lone_key]})
    for obj, spelling in ((nan, "NaN"), (inf, "-Infinity"), (big, "1e999")):
        text = text.replace(f'"id": "{obj["id"]}"', f'"id": "{obj["id"]}", "x_score": {spelling}')
    text = text.replace(f'"id": "{lone["id"]}"', f'"id": "{lone["id"]}", "x_note": "a\\ud800b"')
    text = text.replace(f'"id": "{lone_key["id"]}"', f'"id": "{lone_key["id"]}", "x_\\udfff": 1')
    status, _, body = _post_objects(served, text.encode())
    assert status == 202, body
    answer = strict(body)
    assert answer["success_count"] == 1 and answer["failure_count"] == 5, answer["failures"]
    messages = {f["id"]: f["message"] for f in answer["failures"]}
    assert "finite" in messages[nan["id"]] and "finite" in messages[big["id"]]
    assert "Unicode" in messages[lone["id"]] and "Unicode" in messages[lone_key["id"]]
    # Every consumer still reads the collection, and the flat feeds work.
    for path in ("objects/", "manifest/", f"objects/{good['id']}/"):
        status, _, body = _get(served, f"/api/collections/{COLL}/{path}")
        assert status == 200 and strict(body)
    stored = strict(_get(served, f"/api/collections/{COLL}/objects/")[2])["objects"]
    assert good["id"] in {o["id"] for o in stored} and nan["id"] not in {o["id"] for o in stored}
    for feed in ("all.csv", "all.txt", "domain.csv"):
        status, _, body = _get(served, f"/feeds/{COLL}/{feed}")
        assert status == 200 and b"host700.example.com" in body, body
        assert b"host704" not in body and b"host705" not in body


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"GZip"])
def test_compressed_bodies_that_do_not_decompress_are_400(served, encoding):
    junk = b"this is not compressed data at all" * 4
    header = b"Content-Encoding: " + encoding + b"\r\n"
    taxii_error(*_post_objects(served, junk, header), 400)
    for query in (b"?wait=5", b""):
        status, headers, body = raw_request(
            served.urls["webhook"],
            b"POST /v1/alerts/generic" + query + b" HTTP/1.1\r\n"
            b"Content-Type: application/json\r\n" + header, junk,
        )  # fmt: skip
        assert status == 400 and headers["content-type"].startswith("application/json"), body
        assert json.loads(body)["error"] == "bad_body"
    # Answered before the body is read (no credentials, unknown format, wrong type): the body is
    # still drained or the connection closed without a traceback (checked at the end).
    head = f"POST /api/collections/{COLL}/objects/ HTTP/1.1\r\n".encode() + TAXII_JSON + header
    taxii_error(*raw_request(served.urls["taxii"], head, junk), 401)
    for path, ctype, code in ((b"/v1/alerts/nope", b"application/json", 404),
                              (b"/v1/alerts/generic", b"image/png", 415)):  # fmt: skip
        status, _, body = raw_request(
            served.urls["webhook"],
            b"POST " + path + b" HTTP/1.1\r\nContent-Type: " + ctype + b"\r\n" + header, junk,
        )  # fmt: skip
        assert status == code, body


def test_compressed_bodies_that_decompress_still_work(served):
    (one,) = indicators(1, start=720)
    envelope = json.dumps({"objects": [one]}).encode()
    status, _, body = _post_objects(served, gzip.compress(envelope), b"Content-Encoding: gzip\r\n")
    assert status == 202 and json.loads(body)["success_count"] == 1
    alert = json.dumps({"message": "no indicators here"}).encode()
    status, _, body = raw_request(
        served.urls["webhook"],
        b"POST /v1/alerts/generic?wait=5 HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: deflate\r\n", zlib.compress(alert),
    )  # fmt: skip
    assert status == 200, body


def test_a_flat_key_of_5000_dotted_parts_is_400_in_both_modes(served):
    body = json.dumps({DEEP_KEY: "8.8.8.8"}).encode()
    for query in (b"?wait=5", b""):
        status, _, answer = raw_request(
            served.urls["webhook"],
            b"POST /v1/alerts/generic" + query + b" HTTP/1.1\r\nContent-Type: application/json\r\n",
            body,
        )
        assert status == 400 and json.loads(answer)["error"] == "bad_payload", answer
        assert "dotted parts" in json.loads(answer)["message"]
    # nested 40 deep, each level a 3-part key: 120 levels once unflattened
    doc: dict = {"ip": "203.0.113.5"}
    for _ in range(40):
        doc = {"a.b.c": doc}
    status, _, answer = raw_request(
        served.urls["webhook"],
        b"POST /v1/alerts/generic HTTP/1.1\r\nContent-Type: application/json\r\n",
        json.dumps(doc).encode(),
    )
    assert status == 400 and "deeper than" in json.loads(answer)["message"], answer
    status, _, answer = raw_request(served.urls["webhook"], b"GET /healthz HTTP/1.1\r\n")
    assert status == 200 and json.loads(answer)["jobs"] == {}
