"""Hostile input over real HTTP: every bad request gets a TAXII error resource with the right
status (never a 500), and nothing is stored half-way."""

from __future__ import annotations

import base64
import json
import socket
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import FEED, INBOX, OPEN, PASSWORD
from .test_server import MEDIA, http, indicators

OBJECTS = "/api/collections/{INBOX}/objects/"
ONE = indicators(1, start=900)[0]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("path, method, body, headers, user, code", [
    (OBJECTS + "?next=" + _b64(b"99999999999999999999999999|x"), "GET", None, {}, ..., 400),
    (OBJECTS + "?next=" + _b64(b"-5|x"), "GET", None, {}, ..., 400),
    (OBJECTS + "?next=" + "A" * 2000, "GET", None, {}, ..., 400),
    (OBJECTS + "?limit=1e3", "GET", None, {}, ..., 400),
    (OBJECTS + "?limit=0", "GET", None, {}, ..., 400),
    (OBJECTS + "?added_after=2026-02-30T00:00:00Z", "GET", None, {}, ..., 400),
    (OBJECTS + "?added_after=2026-01-01T25:00:00Z", "GET", None, {}, ..., 400),
    (OBJECTS + "?added_after=2026-01-01T00:00:00%2B01:00", "GET", None, {}, ..., 400),
    (OBJECTS + "?match[id]=" + ",".join(f"indicator--{i:08d}-0000-4000-8000-000000000000"
                                         for i in range(101)), "GET", None, {}, ..., 400),
    (OBJECTS + "?match[id]=not-an-id", "GET", None, {}, ..., 400),
    (OBJECTS + "?match[type]=Indicator;DROP", "GET", None, {}, ..., 400),
    (OBJECTS + "?match[spec_version]=two", "GET", None, {}, ..., 400),
    (OBJECTS + "?match[version]=2026-13-01T00:00:00Z", "GET", None, {}, ..., 400),
    (OBJECTS + "indicator--00000000-0000-4000-8000-000000000000/versions/?match[type]=x", "GET",
     None, {}, ..., 400),
    (OBJECTS, "GET", None, {"Accept": "application/taxii+json;version=2.0"}, ..., 406),
    (OBJECTS, "POST", b"{}", {"Content-Type": "application/taxii+json;version=2.0"}, ..., 415),
    (OBJECTS, "POST", b"{}", {}, ..., 415),
    (OBJECTS, "POST", b"[" * 100_000, {"Content-Type": MEDIA}, ..., 400),
    (OBJECTS, "POST", b"\xff\xfe{", {"Content-Type": MEDIA}, ..., 400),
    (OBJECTS, "POST", b'{"objects": {}}', {"Content-Type": MEDIA}, ..., 422),
    (OBJECTS, "POST", b"[]", {"Content-Type": MEDIA}, ..., 422),
    (OBJECTS, "PUT", b"{}", {"Content-Type": MEDIA}, ..., 405),
    (OBJECTS, "GET", None, {"Authorization": "Basic !!!"}, None, 401),
    (OBJECTS, "GET", None, {"Authorization": "Basic " + _b64(b"\xff\xfe:x")}, None, 401),
    (OBJECTS, "GET", None, {"Authorization": "Basic " + _b64(b"nobody:x")}, None, 401),
    (OBJECTS, "GET", None, {"Authorization": "Bearer wrong"}, None, 401),
    (OBJECTS, "GET", None, {"Authorization": "Digest x"}, None, 401),
    (OBJECTS + "indicator--00000000-0000-4000-8000-000000000000/", "DELETE", None, {}, ..., 404),
    ("/api/collections/{FEED}/objects/" + ONE["id"] + "/", "DELETE", None, {},
     ("firewall", "fw-pass"), 403),
    ("/api/collections/{OPEN}/objects/", "POST", json.dumps({"objects": [ONE]}).encode(),
     {"Content-Type": MEDIA}, None, 401),
    ("/api/collections/{OPEN}/", "DELETE", None, {}, ..., 405),
    ("/api/status/" + "x" * 300 + "/", "GET", None, {}, None, 401),
    ("/feeds/{INBOX}/all.txt", "GET", None, {}, None, 401),
    ("/feeds/{INBOX}/../../etc/passwd", "GET", None, {}, ..., 404),
])  # fmt: skip
def test_bad_requests_get_taxii_errors(server, path, method, body, headers, user, code):
    path = path.replace("{INBOX}", INBOX).replace("{FEED}", FEED).replace("{OPEN}", OPEN)
    kwargs = {} if user is ... else {"user": user}
    status, h, raw = http(server.url + path, method, body, headers, **kwargs)
    assert status == code, raw[:300]
    err = json.loads(raw)
    assert err["http_status"] == str(code) and err["title"] and "description" in err
    assert h["Content-Type"] == MEDIA
    assert ("WWW-Authenticate" in h) == (code == 401)


def test_an_invalid_envelope_stores_nothing(server):
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    for body in (b'{"objects": [' + json.dumps(ONE).encode() + b"]", b"x" * 300_000):
        status, _, _ = http(url, "POST", body, {"Content-Type": MEDIA})
        assert status in (400, 413)
    status, _, raw = http(url)
    assert status == 200 and json.loads(raw) == {"more": False}


def test_oversized_body_without_content_length(server):
    """A chunked upload larger than the cap is refused while it arrives, not after."""
    host, port = server.url.split("//")[1].split(":")
    auth = _b64(f"analyst:{PASSWORD}".encode())
    head = (f"POST /api/collections/{INBOX}/objects/ HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: {MEDIA}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    chunk = b"x" * 65536
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode())
        try:
            for _ in range(8):  # 512 KiB against a 200 kB cap
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may close before everything is sent
        reply = s.recv(65536).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert '"http_status": "413"' in reply


def test_status_is_only_for_those_who_may_see_its_collection(server):
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    _, _, raw = http(url, "POST", json.dumps({"objects": [ONE]}).encode(),
                     {"Content-Type": MEDIA})  # fmt: skip
    sid = json.loads(raw)["id"]
    assert http(f"{server.url}/api/status/{sid}/")[0] == 200
    assert http(f"{server.url}/api/status/{sid}/", user=("firewall", "fw-pass"))[0] == 404
    assert http(f"{server.url}/api/status/{sid}/", user=None)[0] == 401


def test_delete_by_version(server):
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    first = indicators(1, start=950)[0]
    later = dict(first, modified="2099-01-01T00:00:00.000Z")
    http(url, "POST", json.dumps({"objects": [first, later]}).encode(), {"Content-Type": MEDIA})
    one = f"{url}{first['id']}/"
    assert http(one + "?match[version]=last", "DELETE")[0] == 200
    _, _, raw = http(one + "versions/")
    assert json.loads(raw)["versions"] == [first["modified"]]
    assert http(one + "?match[version]=2099-01-01T00:00:00Z", "DELETE")[0] == 404
    assert http(one, "DELETE")[0] == 200
    assert http(one)[0] == 404


QUERY_KEYS = st.sampled_from(
    ["added_after", "limit", "next", "match[id]", "match[type]", "match[version]",
     "match[spec_version]", "match[x]", "junk"]
)  # fmt: skip
NOBJ = "objects/indicator--00000000-0000-4000-8000-000000000000/"
ENDPOINTS = st.sampled_from(["objects/", "manifest/", NOBJ, NOBJ + "versions/"])
QUERY_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["2026-01-01T00:00:00Z", "0", "-1", "all", "first", "last", "indicator",
                     "2.1", "9" * 30, "indicator--00000000-0000-4000-8000-000000000000"]),
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=4), endpoint=ENDPOINTS)
def test_any_query_string_gets_a_taxii_answer(server, query, endpoint):
    qs = urllib.parse.urlencode(query)
    status, h, raw = http(f"{server.url}/api/collections/{INBOX}/{endpoint}?{qs}")
    assert status in (200, 400, 404), (status, raw[:200])
    assert h["Content-Type"] == MEDIA
    body = json.loads(raw)
    if status != 200:
        assert body["http_status"] == str(status)
    else:
        assert not body.get("more") or body.get("next")


def test_flat_feeds_resist_line_and_formula_injection(server):
    good = indicators(1, start=960)[0]
    sneaky = dict(indicators(1, start=961)[0], labels=['=HYPERLINK("http://x")'])
    sneaky["pattern"] = "[domain-name:value = 'a.example.com\n0.0.0.0']"
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    _, _, raw = http(url, "POST", json.dumps({"objects": [good, sneaky]}).encode(),
                     {"Content-Type": MEDIA})  # fmt: skip
    assert json.loads(raw)["success_count"] == 2  # valid STIX: the feed must cope
    txt = http(f"{server.url}/feeds/{INBOX}/all.txt")[2].decode()
    assert txt.splitlines() == ["host960.example.com"]
    labelled = dict(good, modified="2099-01-01T00:00:00.000Z", labels=["=cmd|' /C calc'!A0"])
    http(url, "POST", json.dumps({"objects": [labelled]}).encode(), {"Content-Type": MEDIA})
    csv_text = http(f"{server.url}/feeds/{INBOX}/all.csv")[2].decode()
    assert "'=cmd" in csv_text and ",=cmd" not in csv_text


def test_objects_stored_before_ingest_refused_them_never_break_a_reader(server):
    """Rows an older version stored (NaN, a lone surrogate, a valid_until that is a number) are
    left out of objects/ and of the feeds, which keep serving the rest as strict JSON."""
    from taxii.server import STORE

    good, nan, lone, odd = indicators(4, start=980)
    nan["x_score"] = float("nan")
    lone["name"] = "a\ud800b"
    odd["valid_until"] = 5
    server.app[STORE].add(INBOX, [good, nan, lone, odd])  # past the checks of POST

    def no_constant(name):
        raise ValueError(name)

    status, _, raw = http(f"{server.url}/api/collections/{INBOX}/objects/")
    assert status == 200
    ids = [o["id"] for o in json.loads(raw.decode("utf-8"), parse_constant=no_constant)["objects"]]
    assert good["id"] in ids and nan["id"] not in ids
    for feed in ("all.csv", "all.txt"):
        status, _, raw = http(f"{server.url}/feeds/{INBOX}/{feed}")
        assert status == 200, raw
        assert "host980.example.com" in raw.decode("utf-8")
        assert "host982" not in raw.decode() and "host983" not in raw.decode()


@pytest.mark.parametrize("value, code", [
    ("é", 401), ("\udcc3\udca9", 401), ("QUJD\udcff", 401),
])  # fmt: skip
def test_basic_credentials_decoding_never_raises(value, code):
    import asyncio

    from taxii import config as taxii_config
    from taxii.auth import Authenticator
    from taxii.errors import TaxiiError

    auth = Authenticator(taxii_config.TaxiiConfig())
    with pytest.raises(TaxiiError) as info:
        asyncio.run(auth.user("Basic " + value))
    assert info.value.status == code


def test_a_lone_surrogate_in_a_virustotal_answer_is_published_repaired(taxii_settings, tmp_path):
    """VirusTotal answers have carried lone surrogates in threat names: the indicator is
    published with "?" in their place, never stored as text no consumer can decode."""
    import time

    from connectors.core.report import Report
    from connectors.core.store import Cache, CacheEntry, LogRecord
    from taxii import config as taxii_config
    from taxii.publisher import publish_once
    from taxii.store import Store

    class Holder:  # publish_once reads only the enricher's cache
        cache = Cache(tmp_path / "log.db", taxii_settings.cache)

    now = time.time()
    report = Report(kind="domain", id="bad.example.com", threat_label="trojan.\ud800x",
                    tags=("ok", "odd\udfff"), stats={"malicious": 9})  # fmt: skip
    Holder.cache.put(CacheEntry("domain:bad.example.com", "malicious", report.to_dict(), now))
    Holder.cache.log([LogRecord("domain:bad.example.com", "domain", "bad.example.com",
                                "malicious", 90, "cli", now)])  # fmt: skip
    store = Store(tmp_path / "pub.db")
    assert publish_once(Holder, store, taxii_config.load(taxii_settings.raw)) >= 3
    (row,) = store.query(FEED, limit=10, types=["indicator"]).objects
    assert "\\ud8" not in row["body"] and "\\udf" not in row["body"]
    assert json.loads(row["body"])["labels"][:1] == ["trojan.?x"]
