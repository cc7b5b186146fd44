"""IOC sources: collections, Livehunt notifications, the IoC Stream and Intelligence search.
Each returns a list of descriptors; the app pages them and fills in full objects."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from . import synth
from .objects import InvalidArgument

COLLECTION_TYPES = {
    "files": "file",
    "urls": "url",
    "domains": "domain",
    "ip_addresses": "ip_address",
}
DEMO_COLLECTION = {
    "file": [synth.EICAR["sha256"], f"{0xC0FFEE:064x}", f"{0xBADC0DE:064x}"],
    "domain": [synth.MALICIOUS_DOMAIN, "update-check.net", "cdn-telemetry.com"],
    "url": [synth.MALICIOUS_URL],
    "ip_address": [synth.MALICIOUS_IP, "45.155.205.233"],
}
SYNTHETIC = re.compile(r"^synthetic-(\d{1,6})$")


def collection_members(cid: str) -> Optional[Dict[str, List[str]]]:
    """type -> ids; None for an unknown collection."""
    if cid == "demo-apt-campaign":
        return DEMO_COLLECTION
    m = SYNTHETIC.match(cid)
    if not m:
        return None
    n = int(m.group(1))
    rng = synth.rng_for("collection", cid)
    out: Dict[str, List[str]] = {"file": [], "domain": [], "url": [], "ip_address": []}
    for i in range(n):
        kind = ("file", "domain", "url", "ip_address")[i % 4]
        if kind == "file":
            out[kind].append(f"{rng.getrandbits(256):064x}")
        elif kind == "domain":
            out[kind].append(f"c2-{cid}-{i}.com")
        elif kind == "url":
            out[kind].append(f"http://c2-{cid}-{i}.com/gate.php")
        else:
            out[kind].append(synth.random_ip(rng))
    return out


def collection_object(cid: str, members: Dict[str, List[str]], base: str) -> Dict[str, Any]:
    rng = synth.rng_for("collection-meta", cid)
    created = synth.today() - rng.randint(10, 400) * synth.DAY
    return {
        "type": "collection",
        "id": cid,
        "links": {"self": f"{base}/api/v3/collections/{cid}"},
        "attributes": {
            "name": "Demo APT campaign" if cid == "demo-apt-campaign" else f"Synthetic {cid}",
            "description": "Indicators served by the vtconnect emulator",
            "creation_date": created,
            "last_modification_date": created + synth.DAY,
            "tags": ["apt", "emulator"],
            "files_count": len(members["file"]),
            "domains_count": len(members["domain"]),
            "urls_count": len(members["url"]),
            "ip_addresses_count": len(members["ip_address"]),
        },
    }


def hunting_notifications() -> List[Tuple[str, Dict[str, Any]]]:
    rng = synth.rng_for("livehunt")
    out = []
    for i in range(45):
        sha = f"{rng.getrandbits(256):064x}"
        out.append(
            (
                sha,
                {
                    "notification_id": f"{6000000000 + i}",
                    "notification_date": synth.today() - i * 3600,
                    "rule_name": rng.choice(("MAL_Emotet_Loader", "SUSP_PS_Obfusc", "APT_Beacon")),
                    "ruleset_name": "vtconnect-demo",
                    "ruleset_id": "1234567890",
                    "match_in_subfile": False,
                },
            )
        )
    return out


def ioc_stream(entity_type: Optional[str]) -> List[Tuple[Dict[str, str], Dict[str, Any]]]:
    rng = synth.rng_for("ioc-stream")
    out = []
    for i in range(60):
        kind = ("file", "domain", "url", "ip_address")[i % 4]
        if kind == "file":
            d = {"type": "file", "id": f"{rng.getrandbits(256):064x}"}
        elif kind == "domain":
            d = {"type": "domain", "id": f"stream-{i}.net"}
        elif kind == "url":
            url = f"http://stream-{i}.net/payload.bin"
            d = {"type": "url", "id": synth.sha256_hex(url), "url": url}
        else:
            d = {"type": "ip_address", "id": synth.random_ip(rng)}
        ctx = {
            "notification_id": f"{7000000000 + i}",
            "notification_date": synth.today() - i * 600,
            "origin": "subscriptions",
            "sources": [
                {"type": "collection", "id": "demo-apt-campaign", "label": "Demo APT campaign"}
            ],
            "tags": ["emulator"],
        }
        if entity_type in (None, kind):
            out.append((d, ctx))
    return out


SEARCH_TOKEN = re.compile(r"^(entity|p|tag|type):(.+)$")


def parse_search(query: str) -> Dict[str, str]:
    """A small subset of VT Intelligence: entity:, p:N+, tag:, type:, or one bare indicator."""
    q = query.strip()
    if not q:
        raise InvalidArgument("empty query")
    terms: Dict[str, str] = {}
    for token in q.split():
        m = SEARCH_TOKEN.match(token)
        if m:
            terms[m.group(1)] = m.group(2)
        elif ":" in token and "://" not in token:
            raise InvalidArgument(f"unsupported search modifier in {token!r}")
        elif "value" in terms:
            raise InvalidArgument("only one bare indicator per query is supported")
        else:
            terms["value"] = token
    entity = terms.get("entity", "file")
    if entity not in ("file", "url", "domain", "ip"):
        raise InvalidArgument(f"unknown entity {entity!r}")
    if "p" in terms and not re.match(r"^\d+\+?$", terms["p"]):
        raise InvalidArgument("p: takes a number, e.g. p:5+")
    return terms


def search_candidates(terms: Dict[str, str]) -> List[Dict[str, str]]:
    entity = {"ip": "ip_address"}.get(terms.get("entity", "file"), terms.get("entity", "file"))
    rng = synth.rng_for("search", entity)
    if entity == "file":
        return [{"type": "file", "id": f"{rng.getrandbits(256):064x}"} for _ in range(200)]
    if entity == "domain":
        return [{"type": "domain", "id": f"search-{i}.com"} for i in range(200)]
    if entity == "url":
        return [{"type": "url", "id": "", "url": f"http://search-{i}.com/x"} for i in range(200)]
    return [{"type": "ip_address", "id": synth.random_ip(rng)} for _ in range(200)]
