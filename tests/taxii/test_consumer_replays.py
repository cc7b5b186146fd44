"""Microsoft Sentinel (TAXII 2.0 and 2.1 modes) and Cisco Secure Access, replayed request by
request over a real socket with exactly the headers written here (http.client, nothing added).

What each consumer is documented to do, and where that is written:

Microsoft Sentinel, "Threat Intelligence - TAXII" data connector
- Microsoft Learn, "Connect Microsoft Sentinel to STIX/TAXII threat intelligence feeds"
  (learn.microsoft.com/azure/sentinel/connect-threat-intelligence-taxii; MicrosoftDocs/azure-docs
  articles/sentinel/connect-threat-intelligence-taxii.md): a TAXII 2.0 or 2.1 *API Root URL* and a
  *Collection ID* (no discovery), optional username and password (HTTP Basic), "import
  indicators" all available / at most one month, week or day old, a polling frequency; on "Add"
  it confirms that a connection to the server was established.
- The connector's ARM model (TiTaxiiDataConnector: taxiiServer, collectionId, userName,
  password, taxiiLookbackPeriod; PollingFrequency OnceAMinute / OnceAnHour / OnceADay,
  learn.microsoft.com .../securityinsights.models.titaxiidataconnector): the lookback period
  becomes the `added_after` of the polls.
- Azure/Azure-Sentinel issue #11202 (2024): the connector refuses a collection id that is not a
  UUIDv4 ("Taxii collectionId (uuidv4) is not valid").
- OpenCTI-Platform/opencti issue #12983 (2025): Sentinel stopped importing ("TAXII Spec
  Violations") when the API root's `versions` said ["2.1"] instead of the media type
  ["application/taxii+json;version=2.1"]; so it reads the API root and checks that member.
Neither source shows Sentinel's User-Agent or the exact spelling of its Accept header: the
replays send the media types as the TAXII 2.0 and 2.1 specifications spell them, the form a
conforming client sends.

Cisco Secure Access, Threat Intelligence Feeds API (developer.cisco.com/docs/cloud-security/:
"Threat Intelligence Feeds API overview", "Discover TAXII API Roots", "Create Threat Intelligence
Feed", model "collection_id")
- a feed is a `discovery_url` ("must end with a trailing slash", TAXII 2.1 section 4.1), a
  `root_url`, a `collection_name` and a collection id whose schema pattern is a UUIDv4
  (^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$);
- `auth_type` basic, bearer or api_key (an API key header we do not serve; basic and bearer are
  replayed);
- Secure Access queries the discovery endpoint for the API roots, then the root's collections,
  then polls the collection on the feed's polling interval; the feed must carry IPv4/IPv6
  addresses, FQDNs and URLs (they become a destination list).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timezone

import pytest

from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict

from .conftest import FEED, INBOX, PASSWORD, TOKEN
from .test_consumers import post
from .test_server import indicators
from .test_v20 import STIX20, TAXII20, basic, raw_get

TAXII21 = "application/taxii+json;version=2.1"
# Cisco's schema for collection_id, verbatim
CISCO_COLLECTION_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
SENTINEL_AUTH = {"Authorization": basic("analyst", PASSWORD)}


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sentinel_poll(url, accept, added_after):
    """One poll as the connector makes it: every page of objects added after the checkpoint;
    the 2.1 way by `next`, the 2.0 way as one answer (no Range header is documented for it)."""
    ids, checkpoint, query = [], added_after, f"?added_after={added_after}"
    while True:
        status, headers, raw = raw_get(url + query, {"Accept": accept, **SENTINEL_AUTH})
        assert status in (200, 206), raw
        assert headers["Content-Type"] == (STIX20 if accept == STIX20 else TAXII21)
        body = json.loads(raw)
        ids += [o["id"] for o in body.get("objects", [])]
        checkpoint = headers.get("X-TAXII-Date-Added-Last", checkpoint)
        if not body.get("more"):
            return ids, checkpoint
        query = f"?added_after={added_after}&next={body['next']}"


@pytest.mark.parametrize(
    "root_accept, objects_accept, version",
    [(TAXII21, TAXII21, TAXII21), (TAXII20, STIX20, "taxii-2.0")],
    ids=["taxii21", "taxii20"],
)
def test_sentinel_connector_setup_then_lookback_polls(server, root_accept, objects_accept, version):
    root, coll = f"{server.url}/api/", f"{server.url}/api/collections/{INBOX}/"
    # "Add": the collection id is checked to be a UUIDv4, then the API root is read and its
    # `versions` must name the protocol as a media type (2.1) or as "taxii-2.0" (the 2.0 spelling)
    assert uuid.UUID(INBOX).version == 4 and str(uuid.UUID(INBOX)) == INBOX
    status, headers, raw = raw_get(root, {"Accept": root_accept, **SENTINEL_AUTH})
    assert status == 200 and headers["Content-Type"] == root_accept, raw
    assert json.loads(raw)["versions"] == [version]
    status, _, raw = raw_get(coll, {"Accept": root_accept, **SENTINEL_AUTH})
    assert status == 200 and json.loads(raw)["id"] == INBOX and json.loads(raw)["can_read"]

    # "At most one day old": the first poll asks for what was added in the last day; more than a
    # page (50 here) arrives whole in both modes.
    first = indicators(70)
    post(coll + "objects/", first)
    ids, checkpoint = sentinel_poll(coll + "objects/", objects_accept, rfc3339(time.time() - 86400))
    assert len(ids) == len(set(ids)) == 70
    # The next poll (once a minute) starts at the last date added it saw: nothing twice, nothing
    # missed, also for objects added between the polls.
    again, _ = sentinel_poll(coll + "objects/", objects_accept, checkpoint)
    assert again == []
    post(coll + "objects/", indicators(3, start=500))
    new, _ = sentinel_poll(coll + "objects/", objects_accept, checkpoint)
    assert len(new) == 3 and not set(new) & set(ids)
    # A lookback that starts later than everything: an empty answer, still the protocol's shape.
    none, _ = sentinel_poll(coll + "objects/", objects_accept, rfc3339(time.time() + 3600))
    assert none == []


def test_sentinel_refuses_nothing_it_is_documented_to_send(server):
    """Lower-case header names and the 2.1 media type with a space (both are legal HTTP and media
    type spellings) get the same answers as the canonical forms."""
    url = f"{server.url}/api/collections/{INBOX}/objects/?added_after=2000-01-01T00:00:00Z"
    post(f"{server.url}/api/collections/{INBOX}/objects/", indicators(2))
    for headers in (
        {"accept": TAXII21, "authorization": SENTINEL_AUTH["Authorization"]},
        {"Accept": "application/taxii+json; version=2.1", **SENTINEL_AUTH},
        {"accept": STIX20, "authorization": SENTINEL_AUTH["Authorization"]},
    ):
        status, got, raw = raw_get(url, headers)
        assert status == 200 and len(json.loads(raw)["objects"]) == 2, (headers, raw)
        assert got["Content-Type"] in (TAXII21, STIX20)


def _typed_indicators():
    """One IPv4 address, one FQDN and one URL: what a Secure Access destination list takes."""
    out = []
    for i, (kind, value) in enumerate(
        [
            ("ipv4", "203.0.113.50"),
            ("domain", "c2.example.net"),
            ("url", "http://drop.example.org/a.exe"),
        ]  # fmt: skip
    ):
        enr = Enrichment(value=value, kind=kind, verdict=Verdict.MALICIOUS, score=90,
                         reason="test", normalized=value, vt_id=value,
                         link="https://www.virustotal.com/gui/x")  # fmt: skip
        out.append(stix.indicator(enr, time.time() - 3600 + i))
    return out


@pytest.mark.parametrize(
    "auth",
    [{"Authorization": f"Bearer {TOKEN}"}, {"Authorization": basic("firewall", "fw-pass")}],
    ids=["bearer", "basic"],
)
def test_cisco_secure_access_discovery_roots_collections_poll(server, auth):
    post(f"{server.url}/api/collections/{FEED}/objects/", _typed_indicators())
    accept = {"Accept": TAXII21, **auth}
    # discovery_url, with its required trailing slash
    status, headers, raw = raw_get(f"{server.url}/taxii2/", accept)
    assert status == 200 and headers["Content-Type"] == TAXII21, raw
    discovery = json.loads(raw)
    root_url = discovery["default"]
    assert root_url in discovery["api_roots"] and root_url.endswith("/")
    status, _, raw = raw_get(root_url, accept)
    assert status == 200 and json.loads(raw)["versions"] == [TAXII21]
    status, _, raw = raw_get(root_url + "collections/", accept)
    listed = json.loads(raw)["collections"]
    assert all(CISCO_COLLECTION_ID.match(c["id"]) for c in listed)  # every id fits Cisco's schema
    coll = next(c for c in listed if c["title"] == "VirusTotal malicious")  # collection_name
    assert coll["can_read"] and TAXII21.replace("taxii", "stix") in coll["media_types"]
    status, headers, raw = raw_get(f"{root_url}collections/{coll['id']}/objects/", accept)
    assert status == 200 and headers["Content-Type"] == TAXII21
    patterns = " ".join(o["pattern"] for o in json.loads(raw)["objects"] if "pattern" in o)
    for piece in ("ipv4-addr:value = '203.0.113.50'", "domain-name:value = 'c2.example.net'",
                  "url:value = 'http://drop.example.org/a.exe'"):  # fmt: skip
        assert piece in patterns, patterns
    # the next polling interval asks from the last date added on
    since = headers["X-TAXII-Date-Added-Last"]
    status, _, raw = raw_get(
        f"{root_url}collections/{coll['id']}/objects/?added_after={since}", accept
    )
    assert status == 200 and not json.loads(raw).get("objects")


def test_cisco_secure_access_without_credentials_is_told_so(server):
    status, headers, raw = raw_get(
        f"{server.url}/api/collections/{FEED}/objects/", {"Accept": TAXII21}
    )
    body = json.loads(raw)
    assert status == 401 and headers["Content-Type"] == TAXII21 and body["http_status"] == "401"
