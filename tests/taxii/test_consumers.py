"""How real consumers use a TAXII 2.1 server, replayed over HTTP: Microsoft Sentinel (API root
URL + collection UUID + Basic auth, polling with added_after), FortiGate (a direct GET of
objects/ without discovery), XSOAR (collection looked up by title, taxii2-client paging)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from taxii.server import build_app

from .conftest import FEED, INBOX, OPEN, PASSWORD, TOKEN, ServerThread
from .test_server import MEDIA, http, indicators


def post(url, objs):
    status, _, raw = http(url, "POST", json.dumps({"objects": objs}).encode(),
                          {"Content-Type": MEDIA})  # fmt: skip
    assert status == 202, raw
    return json.loads(raw)


def test_sentinel_polls_with_added_after_and_misses_nothing(server):
    url = f"{server.url}/api/collections/{INBOX}/objects/"
    post(url, indicators(30))
    seen, checkpoint = [], None
    for round_ in range(4):
        q = f"?limit=7&added_after={checkpoint}" if checkpoint else "?limit=7"
        more = True
        while more:
            status, headers, raw = http(url + q)
            body = json.loads(raw)
            assert status == 200
            seen += [o["id"] for o in body.get("objects", [])]
            if "X-TAXII-Date-Added-Last" in headers:
                checkpoint = headers["X-TAXII-Date-Added-Last"]
            more = body["more"]
            assert not more or body["next"]
            if more:  # next and added_after together, as taxii2-client sends them
                q = f"?limit=7&next={body['next']}" + (
                    f"&added_after={checkpoint}" if round_ else ""
                )
        post(url, indicators(5, start=1000 + 10 * round_))  # arrives between polls
    assert len(seen) == len(set(seen)) == 30 + 5 * 3


def test_fortigate_gets_objects_directly_without_discovery(server):
    post(f"{server.url}/api/collections/{FEED}/objects/", indicators(3))
    for accept in ("*/*", "application/json", "application/taxii+json",
                   "application/taxii+json; version=2.1"):  # fmt: skip
        status, headers, raw = http(
            f"{server.url}/api/collections/{FEED}/objects",
            headers={"Accept": accept}, user=("firewall", "fw-pass"),
        )  # fmt: skip
        assert status == 200 and headers["Content-Type"] == MEDIA, accept
        assert len(json.loads(raw)["objects"]) == 3
    status, _, raw = http(f"{server.url}/api/collections/{FEED}/objects/", user=None,
                          headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert status == 200 and len(json.loads(raw)["objects"]) == 3


def test_xsoar_finds_the_collection_by_title_and_pages(server):
    root = ApiRoot(f"{server.url}/api/", user="analyst", password=PASSWORD)
    assert root.versions == [MEDIA]
    coll = next(c for c in root.collections if c.title == "Inbox")
    coll.add_objects({"objects": indicators(120)})
    start = time.time()
    pages = list(as_pages(coll.get_objects, per_request=25))
    assert len(pages) == 5 and all(p["more"] for p in pages[:-1]) and not pages[-1]["more"]
    ids = [o["id"] for p in pages for o in p["objects"]]
    assert len(ids) == len(set(ids)) == 120
    manifest = list(as_pages(coll.get_manifest, per_request=50))
    assert sum(len(p["objects"]) for p in manifest) == 120
    assert manifest[0]["objects"][0]["media_type"] == "application/stix+json;version=2.1"
    assert time.time() - start < 30


def test_anonymous_consumer_sees_only_public_collections(server):
    srv = Server(f"{server.url}/taxii2/")
    assert [c.title for c in srv.default.collections] == ["Public"]
    assert Collection(f"{server.url}/api/collections/{OPEN}/").get_objects() == {"more": False}


def test_next_token_works_on_another_server_process(plain_settings):
    """Two servers on one SQLite file (a restart, or a second process): a `next` from one is
    honoured by the other, and paging adds up even while objects are written meanwhile."""
    a = ServerThread(build_app(plain_settings, None))
    b = ServerThread(build_app(plain_settings, None))
    a.start(), b.start()
    try:
        post(f"{a.url}/api/collections/{INBOX}/objects/", indicators(40))
        writer = threading.Thread(
            target=lambda: post(f"{b.url}/api/collections/{INBOX}/objects/",
                                indicators(20, start=500)),
        )  # fmt: skip
        ids, token, hop = [], None, 0
        while True:
            base = (a, b)[hop % 2].url
            q = f"?limit=9&next={token}" if token else "?limit=9"
            body = json.loads(http(f"{base}/api/collections/{INBOX}/objects/{q}")[2])
            ids += [o["id"] for o in body.get("objects", [])]
            if hop == 1:
                writer.start()
                writer.join()
            hop += 1
            if not body["more"]:
                break
            token = body["next"]
        assert len(ids) == len(set(ids)) == 60  # the later writes land after the keyset
    finally:
        a.stop(), b.stop()


def test_versions_and_match_version_spellings(server):
    coll = Collection(f"{server.url}/api/collections/{INBOX}/", user="analyst", password=PASSWORD)
    first = dict(indicators(1, start=70)[0], modified="2026-01-01T10:00:00.000Z")
    first["created"] = first["modified"]
    later = dict(first, modified="2026-01-02T10:00:00.000Z")
    coll.add_objects({"objects": [first, later]})
    got = coll.get_object(first["id"], version="2026-01-01T10:00:00Z")["objects"]
    assert [o["modified"] for o in got] == [first["modified"]]
    got = coll.get_objects(version="first", type="indicator")["objects"]
    assert [o["modified"] for o in got] == [first["modified"]]
    status, headers, raw = http(
        f"{server.url}/api/collections/{INBOX}/objects/{first['id']}/versions/?limit=1"
    )
    body = json.loads(raw)
    assert body["versions"] == [first["modified"]] and body["more"] and body["next"]
    assert headers["X-TAXII-Date-Added-First"] == headers["X-TAXII-Date-Added-Last"]
    status, _, raw = http(
        f"{server.url}/api/collections/{INBOX}/objects/{first['id']}/versions/?next={body['next']}"
    )
    assert json.loads(raw) == {"more": False, "versions": [later["modified"]]}


def test_discovery_uses_the_public_url_behind_a_proxy(plain_settings):
    raw = dict(plain_settings.raw)
    raw["taxii"] = dict(raw["taxii"], public_url="https://taxii.example.org/")
    srv = ServerThread(build_app(replace(plain_settings, raw=raw), None))
    srv.start()
    try:
        body = json.loads(http(f"{srv.url}/taxii2/", user=None)[2])
        assert body["default"] == "https://taxii.example.org/api/"
    finally:
        srv.stop()
