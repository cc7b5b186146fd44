"""taxii2-client and plain HTTP against our TAXII 2.1 server, over real sockets."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Tuple

import pytest
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Collection, Server, as_pages

from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict
from tests.stix_strict import parse_strict

from .conftest import FEED, INBOX, OPEN, PASSWORD, TOKEN

MEDIA = "application/taxii+json;version=2.1"
NOW = time.time() - 3600  # an hour ago: valid_until lies ahead


def indicators(n, start=0):
    out = []
    for i in range(start, start + n):
        enr = Enrichment(
            value=f"host{i}.example.com",
            kind="domain",
            verdict=Verdict.MALICIOUS,
            score=90,
            reason="test",
            normalized=f"host{i}.example.com",
            vt_id=f"host{i}.example.com",
            link="https://www.virustotal.com/gui/x",
        )
        out.append(stix.indicator(enr, NOW + i))
    return out


def http(url, method="GET", body=None, headers=None, user=("analyst", PASSWORD)):
    h = {"Accept": MEDIA, **(headers or {})}
    if user:
        h["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_discovery_collections_and_paging(server):
    srv = Server(server.url + "/taxii2/", user="analyst", password=PASSWORD)
    assert srv.default.url.endswith("/api/")
    titles = {c.title for c in srv.default.collections}
    assert titles == {"VirusTotal malicious", "Inbox", "Public"}
    coll = next(c for c in srv.default.collections if c.title == "Inbox")
    assert coll.can_write and uuid.UUID(coll.id).version == 4
    status = coll.add_objects({"objects": indicators(250)})
    assert status.status == "complete" and status.success_count == 250
    seen = []
    for envelope in as_pages(coll.get_objects, per_request=40):
        seen += [o["id"] for o in envelope.get("objects", [])]
    assert len(seen) == 250 == len(set(seen))
    manifest = coll.get_manifest(limit=10)
    assert manifest["more"] is True and len(manifest["objects"]) == 10


def test_added_after_polling_and_date_headers(server):
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    http(url, "POST", json.dumps({"objects": indicators(5)}).encode(), {"Content-Type": MEDIA})
    status, headers, body = http(url)
    last = headers["X-TAXII-Date-Added-Last"]
    assert len(json.loads(body)["objects"]) == 5
    http(
        url,
        "POST",
        json.dumps({"objects": indicators(3, start=100)}).encode(),
        {"Content-Type": MEDIA},
    )
    status, headers, body = http(url + "?added_after=" + last)
    objs = json.loads(body)["objects"]
    assert status == 200 and len(objs) == 3
    assert headers["X-TAXII-Date-Added-First"] > last


def test_versions_and_no_duplicates(server):
    coll = Collection(f"{server.url}/api/collections/{INBOX}/", user="analyst", password=PASSWORD)
    first = indicators(1)[0]
    later = dict(first, modified=stix.timestamp(NOW + 86400), confidence=50)
    coll.add_objects({"objects": [first]})
    coll.add_objects({"objects": [first, later]})  # the repeated one is not stored twice
    versions = coll.object_versions(first["id"])["versions"]
    assert versions == sorted({first["modified"], later["modified"]})
    latest = coll.get_object(first["id"])["objects"]
    assert [o["modified"] for o in latest] == [later["modified"]]
    every = coll.get_object(first["id"], version="all")["objects"]
    assert len(every) == 2


def test_consumer_patterns_token_public_and_direct_objects(server):
    # A firewall with a bearer token polls objects/ directly, no discovery, no trailing slash.
    http(
        f"{server.url}/api/collections/{FEED}/objects/",
        "POST",
        json.dumps({"objects": indicators(2)}).encode(),
        {"Content-Type": MEDIA},
    )
    status, headers, body = http(
        f"{server.url}/api/collections/{FEED}/objects",
        headers={"Authorization": f"Bearer {TOKEN}"},
        user=None,
    )
    assert status == 200 and headers["Content-Type"] == MEDIA
    assert len(json.loads(body)["objects"]) == 2
    status, _, body = http(
        f"{server.url}/api/collections/{OPEN}/objects/",
        user=None,
        headers={"Accept": "application/json"},
    )
    assert status == 200 and json.loads(body) == {"more": False}


@pytest.mark.parametrize("path, method, body, headers, user, code", [
    ("/api/collections/{INBOX}/objects/", "GET", None, {}, None, 401),
    ("/api/collections/{INBOX}/objects/", "GET", None, {}, ("analyst", "wrong"), 401),
    ("/api/collections/{INBOX}/objects/", "GET", None, {}, ("firewall", "fw-pass"), 404),
    ("/api/collections/{FEED}/objects/", "POST", b'{"objects": []}', {"Content-Type": MEDIA},
     ("firewall", "fw-pass"), 403),
    ("/api/collections/{INBOX}/objects/", "GET", None, {"Accept": "text/html"}, ..., 406),
    ("/api/collections/{INBOX}/objects/", "POST", b"{}", {"Content-Type": "text/plain"}, ..., 415),
    ("/api/collections/{INBOX}/objects/", "POST", b"not json", {"Content-Type": MEDIA}, ..., 400),
    ("/api/collections/{INBOX}/objects/", "POST", b'{"objects": 3}', {"Content-Type": MEDIA},
     ..., 422),
    ("/api/collections/{INBOX}/objects/", "POST", b"x" * 300_000, {"Content-Type": MEDIA}, ...,
     413),
    ("/api/collections/{INBOX}/objects/?added_after=yesterday", "GET", None, {}, ..., 400),
    ("/api/collections/{INBOX}/objects/?limit=-3", "GET", None, {}, ..., 400),
    ("/api/collections/{INBOX}/objects/?next=%%%", "GET", None, {}, ..., 400),
    ("/api/collections/{INBOX}/objects/?match[version]=sometimes", "GET", None, {}, ..., 400),
    ("/api/collections/{INBOX}/objects/?match[colour]=red", "GET", None, {}, ..., 400),
    ("/api/collections/00000000-0000-4000-8000-000000000000/objects/", "GET", None, {}, ..., 404),
    ("/api/collections/{INBOX}/objects/indicator--00000000-0000-4000-8000-000000000000/", "GET",
     None, {}, ..., 404),
    ("/nope/collections/", "GET", None, {}, ..., 404),
    ("/api/status/unknown/", "GET", None, {}, ..., 404),
])  # fmt: skip
def test_bad_requests_get_taxii_errors(server, path, method, body, headers, user, code):
    path = path.replace("{INBOX}", INBOX).replace("{FEED}", FEED)
    kwargs = {} if user is ... else {"user": user}
    status, h, raw = http(server.url + path, method, body, headers, **kwargs)
    assert status == code, raw
    err = json.loads(raw)
    assert err["http_status"] == str(code) and err["title"]
    assert h["Content-Type"] == MEDIA
    if code == 401:
        assert "WWW-Authenticate" in h


def test_invalid_objects_reported_per_object(server):
    good = indicators(1)[0]
    bad = [
        {"type": "indicator"},
        {"type": "indicator", "id": "indicator--not-a-uuid"},
        dict(good, id="malware--" + good["id"].split("--")[1]),
        "string",
    ]
    status, _, raw = http(
        f"{server.url}/api/collections/{INBOX}/objects/",
        "POST",
        json.dumps({"objects": [good, *bad]}).encode(),
        {"Content-Type": MEDIA},
    )
    body = json.loads(raw)
    assert status == 202 and body["success_count"] == 1 and body["failure_count"] == 4
    status, _, raw = http(f"{server.url}/api/status/{body['id']}/")
    assert json.loads(raw)["failure_count"] == 4


def test_delete_object(server):
    coll = Collection(f"{server.url}/api/collections/{INBOX}/", user="analyst", password=PASSWORD)
    obj = indicators(1, start=7)[0]
    coll.add_objects({"objects": [obj]})
    status, _, _ = http(f"{server.url}/api/collections/{INBOX}/objects/{obj['id']}/", "DELETE")
    assert status == 200
    status, _, _ = http(f"{server.url}/api/collections/{INBOX}/objects/{obj['id']}/")
    assert status == 404


async def test_publisher_republishes_the_verdict_log(taxii_settings):
    from connectors.core.enricher import Enricher
    from taxii.server import build_app

    from .conftest import ServerThread

    enricher = Enricher(taxii_settings, connector="splunk")
    await enricher.enrich(["44d88612fea8a8f36de82e1278abb02f", "example.com", "203.0.113.66"])
    await enricher.aclose()
    srv = ServerThread(build_app(taxii_settings, enricher))
    srv.start()
    try:
        deadline = time.time() + 10
        objs = []
        while time.time() < deadline:
            status, _, raw = http(f"{srv.url}/api/collections/{FEED}/objects/")
            objs = json.loads(raw).get("objects", [])
            if any(o["type"] == "indicator" for o in objs):
                break
            time.sleep(0.05)
        patterns = sorted(o["pattern"] for o in objs if o["type"] == "indicator")
        assert patterns == [
            "[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']",
            "[ipv4-addr:value = '203.0.113.66']",
        ]  # example.com is harmless: not published
        for obj in objs:
            assert validate_instance(obj, ValidationOptions(version="2.1")).is_valid
            parse_strict(obj)
    finally:
        srv.stop()
        enricher.close()


def test_flat_feeds(server):
    objs = indicators(3)
    revoked = dict(indicators(1, start=50)[0], revoked=True)
    http(
        f"{server.url}/api/collections/{INBOX}/objects/",
        "POST",
        json.dumps({"objects": [*objs, revoked]}).encode(),
        {"Content-Type": MEDIA},
    )
    status, headers, body = http(
        f"{server.url}/feeds/{INBOX}/domain.txt", headers={"Accept": "text/plain"}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert body.decode().splitlines() == [
        "host0.example.com",
        "host1.example.com",
        "host2.example.com",
    ]
    status, _, body = http(f"{server.url}/feeds/{INBOX}/all.csv")
    lines = body.decode().splitlines()
    assert lines[0].startswith("value,kind,confidence") and len(lines) == 4
    empty = http(f"{server.url}/feeds/{INBOX}/ip.txt")[2]
    assert empty == b"# empty: no entry matches this feed's options\n"  # said, not blank
    assert http(f"{server.url}/feeds/{INBOX}/domain.txt", user=None)[0] == 401
    assert http(f"{server.url}/feeds/{INBOX}/hashes.xml")[0] == 404


def serve_taxii(cfg: Path, emulator_url: str, tmp_path: Path) -> Tuple[subprocess.Popen, str]:
    """`vtconnect serve --taxii` as a real process; (process, URL it says it listens on)."""
    env = dict(
        os.environ,
        VTCONNECT_CONFIG=str(cfg),
        VT_API_URL=emulator_url,
        VT_API_KEY="k",
        XDG_STATE_HOME=str(tmp_path),
    )
    exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
    proc = subprocess.Popen([exe, "serve", "--taxii"], env=env, stderr=subprocess.PIPE, text=True)
    line = ""
    for _ in range(50):
        line = proc.stderr.readline()
        if "listening on" in line:
            break
    return proc, line.strip().rsplit(" ", 1)[-1]


def test_serve_command_runs_and_stops_on_sigterm(tmp_path, emulator_url):
    import signal

    from .conftest import taxii_doc

    doc = taxii_doc(tmp_path)["taxii"]
    cfg = tmp_path / "vtconnect.toml"
    lines = ["[taxii]", "port = 0", f'store = "{doc["store"]}"']
    for c in doc["collections"]:
        lines += [
            "[[taxii.collections]]",
            f'id = "{c["id"]}"',
            f'title = "{c["title"]}"',
            f"public = {str(c.get('public', False)).lower()}",
        ]
    cfg.write_text("\n".join(lines) + "\n")
    proc, url = serve_taxii(cfg, emulator_url, tmp_path)
    try:
        status, _, body = http(url + "/taxii2/", user=None)
        assert status == 200 and json.loads(body)["default"].endswith("/api/")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_invalid_stix_pattern_is_a_per_object_failure(server):
    bad = dict(indicators(1, start=300)[0], pattern="[domain-name:value = 'unterminated]")
    status, _, raw = http(
        f"{server.url}/api/collections/{INBOX}/objects/",
        "POST",
        json.dumps({"objects": [bad]}).encode(),
        {"Content-Type": MEDIA},
    )
    body = json.loads(raw)
    assert status == 202 and body["failure_count"] == 1 and body["success_count"] == 0
    assert "invalid STIX" in body["failures"][0]["message"]


def test_harmless_later_publishes_a_revoked_version(taxii_settings, tmp_path):
    from connectors.core.store import Cache, LogRecord
    from taxii import config as taxii_config
    from taxii.publisher import publish_once
    from taxii.store import Store

    class Holder:  # publish_once reads only the enricher's cache
        cache = Cache(tmp_path / "log.db", taxii_settings.cache)

    rec = LogRecord(
        "domain:bad.example.com", "domain", "bad.example.com", "malicious", 90, "cli", time.time()
    )
    Holder.cache.log([rec])
    store = Store(tmp_path / "pub.db")
    cfg = taxii_config.load(taxii_settings.raw)
    assert publish_once(Holder, store, cfg) == 3  # identity, marking, indicator
    time.sleep(0.002)  # a later modified timestamp
    Holder.cache.log([LogRecord(rec.key, rec.kind, rec.value, "harmless", 5, "cli", time.time())])
    assert publish_once(Holder, store, cfg) == 1
    latest = [
        json.loads(o["body"]) for o in store.query(FEED, limit=10, types=["indicator"]).objects
    ]
    assert len(latest) == 1 and latest[0]["revoked"] is True
    every = store.query(FEED, limit=10, types=["indicator"], versions=["all"]).objects
    assert len(every) == 2
    Holder.cache.close()


def test_serve_with_tls(tmp_path, emulator_url):
    import signal
    import ssl

    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    r = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
    )
    if r.returncode != 0:
        pytest.skip("openssl cannot make a test certificate here")
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[taxii]\nport = 0\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
        f'store = "{tmp_path / "t.db"}"\n'
    )
    proc, url = serve_taxii(cfg, emulator_url, tmp_path)
    try:
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        req = urllib.request.Request(url + "/taxii2/", headers={"Accept": MEDIA})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert json.loads(resp.read())["api_roots"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
