"""IOC sources as data: collections, Livehunt notifications, the IoC Stream and the subset of
Intelligence search the emulator understands. Each yields descriptors; sources.py pages them."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from .fixtures import EICAR, MALICIOUS_DOMAIN, MALICIOUS_IP, MALICIOUS_URL
from .objects import InvalidArgument
from .synth import DAY, Synth, random_ip

COLLECTION_TYPES = {
    "files": "file",
    "urls": "url",
    "domains": "domain",
    "ip_addresses": "ip_address",
}
DEMO_COLLECTION = {
    "file": [EICAR["sha256"], f"{0xC0FFEE:064x}", f"{0xBADC0DE:064x}"],
    "domain": [MALICIOUS_DOMAIN, "update-check.net", "cdn-telemetry.com"],
    "url": [MALICIOUS_URL],
    "ip_address": [MALICIOUS_IP, "45.155.205.233"],
}
BUILT_IN_SIZES = {"demo-large-campaign": 400}  # 100 of each type: paging tests
SYNTHETIC = re.compile(r"^synthetic-(\d{1,6})$")
KINDS = ("file", "domain", "url", "ip_address")


def collection_members(synth: Synth, cid: str) -> Optional[Dict[str, List[str]]]:
    """type -> ids (urls as addresses); None for an unknown collection."""
    if cid == "demo-apt-campaign":
        return DEMO_COLLECTION
    m = SYNTHETIC.match(cid)
    if not m and cid not in BUILT_IN_SIZES:
        return None
    n = int(m.group(1)) if m else BUILT_IN_SIZES[cid]
    rng = synth.rng("collection", cid)
    out: Dict[str, List[str]] = {kind: [] for kind in KINDS}
    for i in range(n):
        kind = KINDS[i % 4]
        if kind == "file":
            out[kind].append(f"{rng.getrandbits(256):064x}")
        elif kind == "domain":
            out[kind].append(f"c2-{cid}-{i}.com")
        elif kind == "url":
            out[kind].append(f"http://c2-{cid}-{i}.com/gate.php")
        else:
            out[kind].append(random_ip(rng))
    return out


def collection_object(
    synth: Synth, cid: str, members: Dict[str, List[str]], base: str
) -> Dict[str, Any]:
    rng = synth.rng("collection-meta", cid)
    created = synth.ref - rng.randint(10, 400) * DAY
    return {
        "type": "collection",
        "id": cid,
        "links": {"self": f"{base}/api/v3/collections/{cid}"},
        "attributes": {
            "name": "Demo APT campaign" if cid == "demo-apt-campaign" else f"Synthetic {cid}",
            "description": "Indicators served by the vtconnect emulator",
            "creation_date": created,
            "last_modification_date": created + DAY,
            "tags": ["apt", "emulator"],
            "files_count": len(members["file"]),
            "domains_count": len(members["domain"]),
            "urls_count": len(members["url"]),
            "ip_addresses_count": len(members["ip_address"]),
        },
    }


def hunting_notifications(synth: Synth) -> List[Tuple[str, Dict[str, Any]]]:
    """(sha256, context_attributes), newest first."""
    rng = synth.rng("livehunt")
    out = []
    for i in range(45):
        sha = f"{rng.getrandbits(256):064x}"
        rule = rng.choice(("MAL_Emotet_Loader", "SUSP_PS_Obfusc", "APT_Beacon"))
        out.append(
            (
                sha,
                {
                    "notification_id": f"{6000000000 + i}",
                    "notification_date": synth.ref - i * 3600,
                    "notification_source_key": f"{rng.getrandbits(32):08x}",
                    "rule_name": rule,
                    "ruleset_name": "vtconnect-demo",
                    "ruleset_id": "1234567890",
                    "rule_tags": ["emulator"],
                    "match_in_subfile": rng.random() < 0.1,
                },
            )
        )
    return out


def ioc_stream(
    synth: Synth, entity_type: Optional[str]
) -> List[Tuple[Dict[str, str], Dict[str, Any]]]:
    """(descriptor, context_attributes), newest first; url descriptors carry "url"."""
    rng = synth.rng("ioc-stream")
    out = []
    for i in range(60):
        kind = KINDS[i % 4]
        if kind == "file":
            d = {"type": "file", "id": f"{rng.getrandbits(256):064x}"}
        elif kind == "domain":
            d = {"type": "domain", "id": f"stream-{i}.net"}
        elif kind == "url":
            d = {"type": "url", "id": "", "url": f"http://stream-{i}.net/payload.bin"}
        else:
            d = {"type": "ip_address", "id": random_ip(rng)}
        hunting = i % 3 == 0
        ctx = {
            "notification_id": f"{7000000000 + i}",
            "notification_date": synth.ref - i * 600,
            "origin": "hunting" if hunting else "subscriptions",
            "sources": [
                {"type": "hunting_ruleset", "id": "1234567890", "label": "vtconnect-demo"}
                if hunting
                else {"type": "collection", "id": "demo-apt-campaign", "label": "Demo APT campaign"}
            ],
            "tags": ["emulator"],
        }
        if entity_type in (None, kind):
            out.append((d, ctx))
    return out


SEARCH_TOKEN = re.compile(r"^(entity|p|positives|tag|type):(.+)$")
POSITIVES = re.compile(r"^(\d+)([+-]?)$")


def parse_search(query: str) -> Dict[str, str]:
    """A small subset of VT Intelligence: entity:, p:N+ / p:N- / p:N, tag:, type:, or one bare
    indicator. Anything else is refused, as VirusTotal refuses what it cannot parse."""
    q = query.strip()
    if not q:
        raise InvalidArgument("Empty query")
    terms: Dict[str, str] = {}
    for token in q.split():
        m = SEARCH_TOKEN.match(token)
        if m:
            terms["p" if m.group(1) == "positives" else m.group(1)] = m.group(2)
        elif ":" in token and "://" not in token and token.count(":") < 2:
            raise InvalidArgument(f"Unsupported search modifier in {token!r}")
        elif "value" in terms:
            raise InvalidArgument("Only one bare indicator per query is supported")
        else:
            terms["value"] = token
    entity = terms.get("entity", "file")
    if entity not in ("file", "url", "domain", "ip"):
        raise InvalidArgument(f"Unknown entity {entity!r}")
    if "p" in terms and not POSITIVES.match(terms["p"]):
        raise InvalidArgument("p: takes a number, e.g. p:5+")
    return terms


def positives_match(terms: Dict[str, str], malicious: int) -> bool:
    m = POSITIVES.match(terms.get("p", "0+"))
    assert m is not None  # parse_search checked it
    n, how = int(m.group(1)), m.group(2)
    return malicious >= n if how == "+" else malicious <= n if how == "-" else malicious == n


def search_candidates(synth: Synth, terms: Dict[str, str]) -> List[Dict[str, str]]:
    entity = {"ip": "ip_address"}.get(terms.get("entity", "file"), terms.get("entity", "file"))
    rng = synth.rng("search", entity)
    if entity == "file":
        return [{"type": "file", "id": f"{rng.getrandbits(256):064x}"} for _ in range(200)]
    if entity == "domain":
        return [{"type": "domain", "id": f"search-{i}.com"} for i in range(200)]
    if entity == "url":
        return [{"type": "url", "id": "", "url": f"http://search-{i}.com/x"} for i in range(200)]
    return [{"type": "ip_address", "id": random_ip(rng)} for _ in range(200)]
