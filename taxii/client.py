"""Pulling other TAXII 2.1 feeds (enriched with VirusTotal's opinion) and pushing ours.

Pull remembers `added_after` per remote collection in the local store, so each run fetches only
what is new. Indicator patterns are read with stix2-patterns; every `=` comparison on a hash,
URL, domain or IP becomes an observable for the core.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Tuple

import requests
from stix2patterns.v21.pattern import Pattern
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from connectors.core import stix
from connectors.core.enricher import Enricher
from connectors.core.quota import Priority
from connectors.core.verdict import Enrichment

from .store import Store

PATHS = {  # (object type, path) -> observable kind hint for the core
    ("file", ("hashes", "MD5")): "file", ("file", ("hashes", "SHA-1")): "file",
    ("file", ("hashes", "SHA-256")): "file", ("url", ("value",)): "url",
    ("domain-name", ("value",)): "domain", ("ipv4-addr", ("value",)): "ip",
    ("ipv6-addr", ("value",)): "ip",
}  # fmt: skip


class PullError(Exception):
    pass


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def _credentials(
    user: Optional[str], password: Optional[str], token: Optional[str]
) -> Dict[str, Any]:
    if token:
        return {"auth": BearerAuth(token)}
    return {"user": user, "password": password} if user else {}


def find_collection(url: str, wanted: str, **creds: Any) -> Collection:
    """`url` is a discovery URL, an API root or a collection URL; `wanted` an id or a title."""
    if "/collections/" in url:
        return Collection(url if url.endswith("/") else url + "/", **creds)
    roots: List[ApiRoot]
    if url.rstrip("/").endswith("taxii2"):
        roots = Server(url if url.endswith("/") else url + "/", **creds).api_roots
    else:
        roots = [ApiRoot(url if url.endswith("/") else url + "/", **creds)]
    for root in roots:
        for coll in root.collections:
            if wanted in (coll.id, coll.title):
                return coll
    raise PullError(f"no collection {wanted!r} at {url}")


def observables(obj: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(kind hint, value) for each equality comparison in an indicator's STIX pattern."""
    if obj.get("type") != "indicator" or obj.get("pattern_type", "stix") != "stix":
        return []
    try:
        comparisons = Pattern(obj.get("pattern", "")).inspect().comparisons
    except Exception:  # stix2-patterns raises several types on bad patterns: skip the object
        return []
    out = []
    for otype, items in comparisons.items():
        for path, op, value in items:
            kind = PATHS.get((otype, tuple(str(p) for p in path)))
            if kind and op == "=" and value.startswith("'") and value.endswith("'"):
                out.append((kind, value[1:-1].replace("\\'", "'").replace("\\\\", "\\")))
    return out


def opinion_note(
    source: Dict[str, Any], results: Iterable[Enrichment], now: float
) -> Dict[str, Any]:
    """A Note on the pulled indicator carrying VirusTotal's opinion of its observables."""
    lines = [
        f"{r.normalized or r.value}: {r.verdict.value} (score {r.score}) - {r.reason}"
        for r in results
    ]
    nid = uuid.uuid5(stix.NAMESPACE, f"note:{source['id']}:{source.get('modified', '')}")
    # Dated like the source version, so pulling the same version again adds no new note.
    stamp = str(source.get("modified") or stix.timestamp(now))
    return {
        "type": "note",
        "spec_version": "2.1",
        "id": f"note--{nid}",
        "created": stamp,
        "modified": stamp,
        "abstract": "VirusTotal opinion",
        "content": "\n".join(lines),
        "object_refs": [source["id"]],
        "created_by_ref": stix.PRODUCER["id"],
    }


async def pull(
    store: Store,
    enricher: Optional[Enricher],
    url: str,
    collection: str,
    into: str,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    token: Optional[str] = None,
    page_size: int = 500,
) -> Dict[str, int]:
    """Fetch new objects from a remote collection into local collection `into`; with an
    enricher, add a Note with VirusTotal's opinion and our own Indicator for risky values."""
    creds = _credentials(user, password, token)
    coll = await asyncio.to_thread(find_collection, url, collection, **creds)
    state_key = f"pull:{coll.url}"
    added_after = store.get_state(state_key) or None

    def fetch() -> Tuple[List[Dict[str, Any]], Optional[str]]:
        objs: List[Dict[str, Any]] = []
        last = added_after
        kwargs = {"added_after": added_after} if added_after else {}
        for env in as_pages(coll.get_objects, per_request=page_size, **kwargs):
            objs += env.get("objects", [])
        if objs:
            # taxii2-client does not expose X-TAXII-Date-Added-Last; the newest `modified` is
            # never later than its date_added, so the next run may fetch a few objects again
            # (stored once: same id and modified) but never misses one.
            last = max(str(o.get("modified", o.get("created", ""))) for o in objs) or last
        return objs, last

    objects, last = await asyncio.to_thread(fetch)
    counts = {"pulled": len(objects), "enriched": 0, "stored": 0}
    new: List[Dict[str, Any]] = list(objects)
    if enricher is not None:
        now = time.time()
        for obj in objects:
            pairs = observables(obj)
            if not pairs:
                continue
            results: List[Enrichment] = []
            for kind, value in pairs:
                results += await enricher.enrich(
                    [value], kind=kind, priority=Priority.BULK, connector="taxii-pull"
                )
            counts["enriched"] += len(results)
            new.append(opinion_note(obj, results, now))
            new += [
                o
                for o in stix.objects_for(results, now)
                if o["type"] != "identity" and o["type"] != "marking-definition"
            ]
        new = [stix.PRODUCER, stix.marking("green"), *new]
    counts["stored"] = sum(store.add(into, new)) if new else 0
    if last:
        store.set_state(state_key, last)
    return counts


def push(
    store: Store,
    url: str,
    collection: str,
    source: str,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    token: Optional[str] = None,
    batch: int = 500,
) -> Dict[str, int]:
    """Send every object of local collection `source` to a remote collection, in batches,
    following each status resource until it is final."""
    coll = find_collection(url, collection, **_credentials(user, password, token))
    sent = ok = failed = 0
    next_token = None
    while True:
        page = store.query(source, limit=batch, next_token=next_token, versions=["all"])
        if page.objects:
            objs = [json.loads(r["body"]) for r in page.objects]
            status = coll.add_objects(
                {"objects": objs}, wait_for_completion=True, poll_interval=1, timeout=60
            )
            sent += len(objs)
            ok += int(status.success_count)
            failed += int(status.failure_count)
        if not page.more:
            return {"sent": sent, "succeeded": ok, "failed": failed}
        next_token = page.next
