"""TAXII 2.0 beside 2.1, replayed as real consumers send it over real sockets: FortiGate
(Fortinet community KB 207607, FortiOS 7.0/7.2 debug output: a direct GET of objects/ with
`Accept: application/vnd.oasis.stix+json; version=2.0`, Basic auth, `Connection: close`, curl's
User-Agent; it pages the 2.0 way only), Microsoft Sentinel in 2.0 and 2.1 mode (API root URL +
collection id + Basic auth, added_after polling), Cisco Secure Access (its feed API takes a
discovery URL, an API root URL and a collection name: discovery, API root, collections, then
objects), and taxii2-client's v20 module."""

from __future__ import annotations

import base64
import http.client as httpclient
import json
import time
from urllib.parse import urlsplit

import pytest
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v20 import Collection as Collection20
from taxii2client.v20 import Server as Server20
from taxii2client.v20 import as_pages as as_pages20

from taxii.server import build_app
from taxii.v20 import downgrade, id20

from .conftest import FEED, INBOX, PASSWORD, ServerThread
from .test_consumers import post
from .test_server import MEDIA, http, indicators

STIX20 = "application/vnd.oasis.stix+json; version=2.0"
TAXII20 = "application/vnd.oasis.taxii+json; version=2.0"


def raw_get(url, headers):
    """One request with exactly these headers (urllib would add its own), as a device sends."""
    parts = urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                    skip_host=True, skip_accept_encoding=True)  # fmt: skip
    for name, value in [("Host", parts.netloc), *headers.items()]:
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fortigate(url, extra=None):
    return raw_get(url, {"User-Agent": "curl/7.58.0",
                         "Authorization": basic("firewall", "fw-pass"),
                         "Accept": STIX20, "Connection": "close", **(extra or {})})  # fmt: skip


def valid20(obj):
    result = validate_instance(obj, ValidationOptions(version="2.0"))
    return result.is_valid, [str(e) for e in result.errors]


@pytest.fixture
def capped(plain_settings):
    """A server whose 2.0 cap is 25 objects, to see what happens past it."""
    app = build_app(plain_settings, None)
    srv = ServerThread(app)
    srv.start()
    from taxii.server import CONFIG

    app[CONFIG].v20_max_objects = 25
    yield srv
    srv.stop()


def test_fortigate_request_gets_a_stix20_bundle_of_everything(server):
    post(f"{server.url}/api/collections/{FEED}/objects/", indicators(60))
    status, headers, raw = fortigate(f"{server.url}/api/collections/{FEED}/objects/")
    assert status == 200 and headers["Content-Type"] == STIX20, raw
    body = json.loads(raw)
    assert body["type"] == "bundle" and body["spec_version"] == "2.0"
    assert body["id"].startswith("bundle--") and len(body["objects"]) == 60  # not one page (50)
    assert headers["Content-Range"] == "items 0-59/60"
    for obj in body["objects"]:
        assert "spec_version" not in obj and "pattern_type" not in obj
        assert obj["labels"] and "indicator_types" not in obj
        assert valid20(obj)[0], valid20(obj)[1]
        assert obj["id"].split("--")[1][14] == "4"  # 2.0 wants UUIDv4 ids
    assert valid20(body)[0], valid20(body)[1]


def test_fortigate_range_pages_206_and_416(server):
    post(f"{server.url}/api/collections/{FEED}/objects/", indicators(30))
    url = f"{server.url}/api/collections/{FEED}/objects/"
    ids = []
    for first in (0, 10, 20):
        status, headers, raw = fortigate(url, {"Range": f"items {first}-{first + 9}"})
        assert status == 206 and headers["Content-Range"] == f"items {first}-{first + 9}/30"
        ids += [o["id"] for o in json.loads(raw)["objects"]]
    assert len(ids) == len(set(ids)) == 30
    status, headers, raw = fortigate(url, {"Range": "items 25-99"})
    assert status == 206 and headers["Content-Range"] == "items 25-29/30"
    assert len(json.loads(raw)["objects"]) == 5
    status, headers, raw = fortigate(url, {"Range": "items 30-39"})
    assert status == 416 and headers["Content-Type"] == TAXII20
    assert json.loads(raw)["http_status"] == "416"
    status, _, raw = fortigate(url, {"Range": "bytes=0-9"})
    assert status == 400 and json.loads(raw)["http_status"] == "400"


def test_past_the_cap_says_so(capped):
    post(f"{capped.url}/api/collections/{FEED}/objects/", indicators(40))
    url = f"{capped.url}/api/collections/{FEED}/objects/"
    status, headers, raw = fortigate(url)
    assert status == 206 and headers["Content-Range"] == "items 0-24/40"
    assert len(json.loads(raw)["objects"]) == 25
    status, headers, raw = fortigate(url, {"Range": "items 20-999"})  # wider than the cap
    assert status == 206 and headers["Content-Range"] == "items 20-39/40"


def test_filters_apply_in_20(server):
    objs = indicators(12)
    post(f"{server.url}/api/collections/{FEED}/objects/", objs[:6])
    _, headers, _ = fortigate(f"{server.url}/api/collections/{FEED}/objects/")
    checkpoint = headers["X-TAXII-Date-Added-Last"]
    post(f"{server.url}/api/collections/{FEED}/objects/", objs[6:])
    url = f"{server.url}/api/collections/{FEED}/objects/?added_after={checkpoint}"
    status, _, raw = fortigate(url)
    assert status == 200 and [o["id"] for o in json.loads(raw)["objects"]] == [
        id20(o["id"]) for o in objs[6:]
    ]
    for asked in (objs[3]["id"], id20(objs[3]["id"])):  # the 2.1 id or the 2.0 one
        url = f"{server.url}/api/collections/{FEED}/objects/?match[id]={asked}"
        assert [o["id"] for o in json.loads(fortigate(url)[2])["objects"]] == [id20(asked)]
    url = f"{server.url}/api/collections/{FEED}/objects/?match[type]=note"  # no 2.0 form
    status, _, raw = fortigate(url)
    assert status == 200 and "objects" not in json.loads(raw)
    status, _, raw = fortigate(f"{server.url}/api/collections/{FEED}/objects/?match[foo]=x")
    assert status == 400
    one = id20(objs[3]["id"])
    status, headers, raw = fortigate(f"{server.url}/api/collections/{FEED}/objects/{one}/")
    assert status == 200 and json.loads(raw)["objects"][0]["id"] == one


def test_sentinel_in_20_and_21_mode(server):
    """Sentinel's TAXII connector: API root URL + collection id, Basic auth, polls objects with
    added_after; its 2.0 mode sends the 2.0 media types, its 2.1 mode the 2.1 ones."""
    post(f"{server.url}/api/collections/{INBOX}/objects/", indicators(7))
    auth = {"Authorization": basic("analyst", PASSWORD)}
    status, headers, raw = raw_get(f"{server.url}/api/", {"Accept": TAXII20, **auth})
    assert status == 200 and headers["Content-Type"] == TAXII20
    assert json.loads(raw)["versions"] == ["taxii-2.0"]
    status, headers, raw = raw_get(f"{server.url}/api/collections/{INBOX}/",
                                   {"Accept": TAXII20, **auth})  # fmt: skip
    assert status == 200 and json.loads(raw)["media_types"] == [STIX20]
    url = f"{server.url}/api/collections/{INBOX}/objects/?added_after=2000-01-01T00:00:00Z"
    status, headers, raw = raw_get(url, {"Accept": STIX20, **auth})
    assert status == 200 and headers["Content-Type"] == STIX20
    assert len(json.loads(raw)["objects"]) == 7
    # 2.1 mode: unchanged 2.1 answers on the same routes
    status, headers, raw = raw_get(f"{server.url}/api/", {"Accept": MEDIA, **auth})
    assert headers["Content-Type"] == MEDIA and json.loads(raw)["versions"] == [MEDIA]
    status, headers, raw = raw_get(url + "&limit=5", {"Accept": MEDIA, **auth})
    body = json.loads(raw)
    assert headers["Content-Type"] == MEDIA and body["more"] and len(body["objects"]) == 5
    assert "Content-Range" not in headers


@pytest.mark.parametrize("accept", [TAXII20, MEDIA])
def test_cisco_secure_access_discovery_root_collection_objects(server, accept):
    """Secure Access is given a discovery URL, an API root URL and a collection name (its Threat
    Intelligence Feeds API): it walks discovery -> API root -> collections, then polls objects."""
    post(f"{server.url}/api/collections/{FEED}/objects/", indicators(4))
    auth = {"Authorization": basic("firewall", "fw-pass")}
    status, headers, raw = raw_get(f"{server.url}/taxii2/", {"Accept": accept, **auth})
    assert status == 200 and headers["Content-Type"] == accept
    root = json.loads(raw)["default"]
    status, headers, raw = raw_get(root, {"Accept": accept, **auth})
    assert status == 200
    status, headers, raw = raw_get(root + "collections/", {"Accept": accept, **auth})
    coll = next(c for c in json.loads(raw)["collections"] if c["title"] == "VirusTotal malicious")
    objects_accept = STIX20 if accept == TAXII20 else MEDIA
    status, headers, raw = raw_get(f"{root}collections/{coll['id']}/objects/",
                                   {"Accept": objects_accept, **auth})  # fmt: skip
    assert status == 200 and headers["Content-Type"] == objects_accept
    assert len(json.loads(raw)["objects"]) == 4


def test_taxii2client_v20_discovery_collections_paging(server):
    post(f"{server.url}/api/collections/{INBOX}/objects/", indicators(95))
    srv = Server20(f"{server.url}/taxii2/", user="analyst", password=PASSWORD)
    assert srv.default.url.endswith("/api/") and srv.default.versions == ["taxii-2.0"]
    coll = next(c for c in srv.default.collections if c.title == "Inbox")
    assert coll.can_read and coll.media_types == [STIX20]
    pages = list(as_pages20(coll.get_objects, per_request=20))
    assert [len(p["objects"]) for p in pages] == [20, 20, 20, 20, 15]
    ids = [o["id"] for p in pages for o in p["objects"]]
    assert len(ids) == len(set(ids)) == 95
    manifest = list(as_pages20(coll.get_manifest, per_request=50))
    assert sum(len(p["objects"]) for p in manifest) == 95
    assert manifest[0]["objects"][0]["media_types"] == [STIX20]
    whole = Collection20(f"{server.url}/api/collections/{INBOX}/", user="analyst",
                         password=PASSWORD).get_objects()  # fmt: skip
    assert len(whole["objects"]) == 95 and whole["spec_version"] == "2.0"


def test_20_is_read_only_and_errors_are_json(server):
    status, headers, raw = http(f"{server.url}/api/collections/{INBOX}/objects/", "POST",
                                b"{}", {"Accept": TAXII20, "Content-Type": STIX20})  # fmt: skip
    assert status == 406 and headers["Content-Type"] == TAXII20
    assert "2.1" in json.loads(raw)["description"]
    status, headers, raw = raw_get(f"{server.url}/api/collections/nope/objects/",
                                   {"Accept": STIX20})  # fmt: skip
    assert status in (401, 403, 404) and json.loads(raw)["http_status"] == str(status)
    status, _, _ = raw_get(f"{server.url}/api/", {"Accept": "application/xml"})
    assert status == 406


async def test_published_objects_downgrade_and_pass_the_20_validator(taxii_settings):
    """What the publisher really writes (indicators, malware, relationships, identity, TLP
    marking, notes, SCOs) answered as 2.0: every object passes stix2-validator in 2.0 mode."""
    from connectors.core.enricher import Enricher

    enricher = Enricher(taxii_settings, connector="splunk")
    await enricher.enrich(["44d88612fea8a8f36de82e1278abb02f", "203.0.113.66",
                           "http://malware.example.net/payload.exe"])  # fmt: skip
    await enricher.aclose()
    srv = ServerThread(build_app(taxii_settings, enricher))
    srv.start()
    try:
        deadline, body21 = time.time() + 10, {}
        while time.time() < deadline:
            body21 = json.loads(http(f"{srv.url}/api/collections/{FEED}/objects/")[2])
            if any(o["type"] == "indicator" for o in body21.get("objects", [])):
                break
            time.sleep(0.05)
        status, _, raw = fortigate(f"{srv.url}/api/collections/{FEED}/objects/")
        objs = json.loads(raw)["objects"]
        assert status == 200 and {"indicator", "identity", "marking-definition"} <= {
            o["type"] for o in objs
        }
        for obj in objs:
            ok, errors = valid20(obj)
            assert ok, (obj, errors)
        assert len(objs) == sum(downgrade(o) is not None for o in body21["objects"])
    finally:
        srv.stop()
        enricher.close()


def test_downgrade_maps_21_fields():
    ind = indicators(1)[0]
    out = downgrade({**ind, "confidence": 80, "lang": "en"})
    assert out is not None and out["labels"] == (ind.get("labels") or ind["indicator_types"])
    for gone in ("spec_version", "pattern_type", "pattern_version", "confidence", "lang"):
        assert gone not in out
    assert downgrade({"type": "domain-name", "id": "domain-name--x", "value": "a.b"}) is None
    assert downgrade({"type": "note", "id": "note--x"}) is None
    plain = {k: v for k, v in ind.items() if k != "labels"}
    assert downgrade(plain)["labels"] == ind["indicator_types"]
    v4 = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"  # TLP green: kept as is
    assert id20(v4) == v4 and out["object_marking_refs"] == [v4]


def test_status_in_20_shape(server):
    done = post(f"{server.url}/api/collections/{INBOX}/objects/", indicators(2))
    auth = {"Authorization": basic("analyst", PASSWORD)}
    status, headers, raw = raw_get(f"{server.url}/api/status/{done['id']}/",
                                   {"Accept": TAXII20, **auth})  # fmt: skip
    body = json.loads(raw)
    assert status == 200 and headers["Content-Type"] == TAXII20
    assert body["successes"] == [o["id"] for o in indicators(2)]  # 2.0: identifiers
