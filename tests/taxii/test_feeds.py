"""Flat feeds for firewalls over a real server socket: options as query parameters and as
[[taxii.feeds]], PAN-OS EDL, Check Point and Cisco TID rules, verdict and confidence filters,
the allow list, the size cap, the empty line, and ETag / Last-Modified with 304."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import pytest

from connectors.core import config, stix
from connectors.core.verdict import Enrichment, Verdict
from taxii.server import FEED_CACHE, build_app

from .conftest import INBOX, OPEN, PASSWORD, ServerThread, taxii_doc

NOW = time.time() - 60
FEEDS = [
    {"name": "pan-domains", "collection": INBOX, "format": "edl", "kind": "domain",
     "wildcards": True},
    {"name": "pan-ips", "collection": INBOX, "format": "edl", "kind": "ip"},
    {"name": "checkpoint", "collection": INBOX, "format": "checkpoint",
     "verdicts": ["malicious", "suspicious"]},
    {"name": "tid-files", "collection": INBOX, "format": "cisco", "kind": "file"},
    {"name": "open-urls", "collection": OPEN, "format": "edl", "kind": "url", "max_entries": 2},
]  # fmt: skip
LISTS = {"ignore": ["own.example.org", ".corp.example.net", "203.0.113.7"]}


def ind(kind, value, verdict=Verdict.MALICIOUS, score=90, at=0.0, **extra):
    enr = Enrichment(
        value=value,
        kind=kind,
        verdict=verdict,
        score=score,
        reason="test",
        normalized=value,
        vt_id=value,
        link="https://www.virustotal.com/gui/x",
    )
    return dict(stix.indicator(enr, NOW + at), **extra)


def http(url, headers=None, user=("analyst", PASSWORD)):
    h = dict(headers or {})
    if user:
        h["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    req = urllib.request.Request(url, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture
def feed_server(tmp_path):
    doc = {"quota": {"tier": "unlimited"}, "lists": LISTS, **taxii_doc(tmp_path)}
    doc["taxii"]["feeds"] = FEEDS
    doc["taxii"]["collections"][2]["write"] = ["analyst"]  # OPEN: anonymous reads
    settings = config.for_emulator(config.from_mapping(doc, env={}), "http://127.0.0.1:9",
                                   str(tmp_path))  # fmt: skip
    srv = ServerThread(build_app(settings, None))
    srv.start()
    yield srv
    srv.stop()


def post(srv, coll, objects):
    body = json.dumps({"objects": objects}).encode()
    req = urllib.request.Request(
        f"{srv.url}/api/collections/{coll}/objects/", data=body, method="POST",
        headers={"Content-Type": "application/taxii+json;version=2.1",
                 "Accept": "application/taxii+json;version=2.1",
                 "Authorization": "Basic " + base64.b64encode(
                     f"analyst:{PASSWORD}".encode()).decode()})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["success_count"] == len(objects)


def body_lines(srv, path, **kw):
    status, _, text = http(srv.url + path, **kw)
    assert status == 200, text
    return text.splitlines()


def test_edl_domains_wildcards_suffixes_and_allow_list(feed_server):
    post(feed_server, INBOX, [
        ind("domain", "bad.example.com"),
        ind("domain", "co.uk"),  # a public suffix: never on a list
        ind("domain", "github.io"),  # a private public suffix: *.github.io blocks everyone
        ind("domain", "own.example.org"),  # our own (ignore list), put there by a peer
        ind("domain", "host.corp.example.net"),  # under an ignored suffix
        ind("domain", "example.net"),  # *.example.net would block the ignored corp.example.net
        ind("domain", "meh.example.com", Verdict.SUSPICIOUS, 45),  # not malicious
    ])  # fmt: skip
    assert body_lines(feed_server, "/feeds/pan-domains.txt") == [
        "bad.example.com", "*.bad.example.com"]  # fmt: skip
    # The same collection as a plain list: no wildcard asked, example.net may be listed.
    assert body_lines(feed_server, f"/feeds/{INBOX}/domain.txt") == [
        "bad.example.com", "example.net"]  # fmt: skip
    # Query parameters widen it: suspicious domains at 40 or more.
    got = body_lines(feed_server, f"/feeds/{INBOX}/domain.txt?verdicts=malicious,suspicious"
                                  "&min_confidence=40")  # fmt: skip
    assert got == ["bad.example.com", "example.net", "meh.example.com"]
    assert body_lines(feed_server, f"/feeds/{INBOX}/domain.txt?min_confidence=95") == [
        "# empty: no entry matches this feed's options"]  # fmt: skip


def test_edl_ips_collapsed_never_too_wide(feed_server):
    post(feed_server, INBOX, [
        *(ind("ipv4", f"198.51.100.{i}") for i in range(4)),  # -> 198.51.100.0/30
        ind("ipv4", "198.51.100.4"),
        ind("ipv4", "0.0.0.0/0"),  # a peer's mistake: would block the internet
        ind("ipv4", "10.0.0.0/8"),  # shorter than min_prefix_ipv4 = 16
        ind("ipv4", "203.0.113.0/29"),  # holds the allow-listed 203.0.113.7
        ind("ipv6", "2001:db8::1"),
        ind("domain", "bad.example.com"),  # one type per list
    ])  # fmt: skip
    assert body_lines(feed_server, "/feeds/pan-ips.txt") == [
        "198.51.100.0/30", "198.51.100.4", "2001:db8::1"]  # fmt: skip
    assert body_lines(feed_server, "/feeds/pan-ips.txt?min_prefix_ipv4=8") == [
        "10.0.0.0/8", "198.51.100.0/30", "198.51.100.4", "2001:db8::1"]  # fmt: skip
    status, _, text = http(f"{feed_server.url}/feeds/{INBOX}/all.txt?format=edl")
    assert status == 400 and "one type" in text


def test_edl_urls_without_scheme_port_and_long_entries_capped(feed_server):
    post(feed_server, OPEN, [
        ind("url", "http://phish.example.com:8080/login", score=70, at=1),
        ind("url", "https://old.example.com/a", score=95, at=0),
        ind("url", "https://new.example.com/b", score=95, at=2),
        ind("url", "https://long.example.com/" + "a" * 300, score=99, at=3),  # over 255
    ])  # fmt: skip
    lines = body_lines(feed_server, "/feeds/open-urls.txt", user=None)  # a public collection
    assert lines == ["# capped: 2 of 3 entries kept (most confident, newest)",
                     "old.example.com/a", "new.example.com/b"]  # fmt: skip
    lines = body_lines(feed_server, "/feeds/open-urls.txt?max_entries=10", user=None)
    assert lines == ["phish.example.com/login", "old.example.com/a", "new.example.com/b"]


def test_checkpoint_csv(feed_server):
    sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    post(feed_server, INBOX, [
        ind("ipv4", "198.51.100.9", score=80),
        ind("ipv4", "198.51.100.16/30", score=50),
        ind("ipv6", "2001:db8::5"),  # Check Point's IP types are IPv4
        ind("domain", "c2.example.com", Verdict.SUSPICIOUS, 40),
        ind("url", "http://drop.example.com/x", score=20),
        ind("md5", "44d88612fea8a8f36de82e1278abb02f"),
        ind("sha256", sha, name="=HYPERLINK(\"x\")"),
        ind("domain", "fine.example.com", Verdict.HARMLESS, 0),
    ])  # fmt: skip
    lines = body_lines(feed_server, "/feeds/checkpoint.csv")
    assert lines[0] == "# UNIQ-NAME,VALUE,TYPE,CONFIDENCE,SEVERITY,PRODUCT,COMMENT"
    rows = [x.split(",") for x in lines[1:]]
    assert [r[1:6] for r in rows] == [
        ["198.51.100.9", "IP", "high", "critical", "AB"],
        ["198.51.100.16-198.51.100.19", "IP Range", "medium", "high", "AB"],
        ["c2.example.com", "Domain", "medium", "medium", "AB"],
        ["http://drop.example.com/x", "URL", "low", "high", "AB"],
        ["44d88612fea8a8f36de82e1278abb02f", "MD5", "high", "critical", "AV"],
        [sha, "SHA256", "high", "critical", "AV"],
    ]
    assert len({r[0] for r in rows}) == len(rows)  # UNIQ-NAME is unique
    assert lines[-1].endswith(',"\'=HYPERLINK(""x"")"')  # no formula for a spreadsheet


def test_cisco_tid_sha256_only_no_cidr(feed_server):
    sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    post(feed_server, INBOX, [
        ind("md5", "44d88612fea8a8f36de82e1278abb02f"), ind("sha256", sha),
        ind("ipv4", "198.51.100.0/24"), ind("ipv4", "198.51.100.77"),
        ind("url", "https://tid.example.com:443/p?q=1"),
    ])  # fmt: skip
    assert body_lines(feed_server, "/feeds/tid-files.txt") == [sha]
    assert body_lines(feed_server, f"/feeds/{INBOX}/ip.txt?format=cisco") == ["198.51.100.77"]
    assert body_lines(feed_server, f"/feeds/{INBOX}/url.txt?format=cisco") == [
        "tid.example.com/p?q=1"]  # fmt: skip


def test_etag_and_last_modified_give_304_until_the_collection_changes(feed_server):
    post(feed_server, INBOX, [ind("domain", "bad.example.com")])
    url = f"{feed_server.url}/feeds/pan-domains.txt"
    status, headers, text = http(url)
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert status == 200 and etag.startswith('"') and text
    renders = feed_server.app[FEED_CACHE].renders
    status, again, text = http(url, {"If-None-Match": etag})
    assert (status, text, again["ETag"]) == (304, "", etag)
    assert http(url, {"If-Modified-Since": modified})[0] == 304
    assert feed_server.app[FEED_CACHE].renders == renders  # answered from the store's state
    assert http(url, {"If-None-Match": '"other"'})[0] == 200
    # Other options are another feed with another ETag.
    assert http(url + "?wildcards=false", {"If-None-Match": etag})[0] == 200
    post(feed_server, INBOX, [ind("domain", "worse.example.com", at=5)])
    status, headers, text = http(url, {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag and "worse.example.com" in text
    assert http(url, {"If-Modified-Since": modified})[0] == 200
    # Rights are the collection's, 304 or not.
    assert http(url, {"If-None-Match": headers["ETag"]}, user=None)[0] == 401


@pytest.mark.parametrize("path, status, words", [
    ("/feeds/nope.txt", 404, "no such feed"),
    ("/feeds/checkpoint.txt", 404, ".csv"),
    (f"/feeds/{INBOX}/domain.txt?min_confidence=high", 400, "whole number"),
    (f"/feeds/{INBOX}/domain.txt?verdicts=evil", 400, "verdicts"),
    (f"/feeds/{INBOX}/domain.txt?colour=red", 400, "unknown feed option"),
    (f"/feeds/{INBOX}/domain.txt?format=checkpoint", 404, ".csv"),
])  # fmt: skip
def test_bad_feed_requests_are_clear_errors(feed_server, path, status, words):
    got, headers, text = http(feed_server.url + path)
    assert got == status and words in text and "json" in headers["Content-Type"]


@pytest.mark.parametrize("feed, words", [
    ({"name": "a b", "collection": INBOX}, "name"),
    ({"name": "x", "collection": "nope"}, "collection"),
    ({"name": "x", "collection": INBOX, "format": "edl"}, "one type"),
    ({"name": "x", "collection": INBOX, "max_entries": 0}, "max_entries"),
    ({"name": "x", "collection": INBOX, "colour": 1}, "unknown key"),
])  # fmt: skip
def test_bad_feed_definitions_are_config_errors(tmp_path, feed, words):
    from taxii import config as taxii_config

    doc = taxii_doc(tmp_path)
    doc["taxii"]["feeds"] = [feed]
    with pytest.raises(config.ConfigError, match=words):
        taxii_config.load(doc)
