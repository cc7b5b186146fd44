"""Pulling other TAXII 2.1 feeds (enriched with VirusTotal's opinion) and pushing ours.

Pull remembers `added_after` per remote collection in the local store, so each run fetches only
what is new. Indicator patterns are read with stix2-patterns; every `=` comparison on a hash,
URL, domain or IP becomes an observable for the core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Tuple

import requests
from stix2patterns.v21.pattern import Pattern
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from connectors.core import stix
from connectors.core.enricher import Enricher
from connectors.core.observable import InvalidObservable, parse
from connectors.core.quota import Priority
from connectors.core.verdict import Enrichment, Verdict

from .errors import TaxiiError
from .filters import TS_RE, timestamp_us
from .pagination import encode_next
from .store import ObjectStore
from .validate import problem, stored_body_ok

log = logging.getLogger(__name__)

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


class _DateAddedLast:
    """Remembers the newest X-TAXII-Date-Added-Last the remote sent (a requests hook on the
    collection's session: taxii2-client does not expose response headers)."""

    def __init__(self) -> None:
        self.value = ""
        self._us = -1

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        got = response.headers.get("X-TAXII-Date-Added-Last", "").strip()
        try:
            us = timestamp_us(got, "X-TAXII-Date-Added-Last")
        except TaxiiError:  # absent or malformed: the fallback decides
            return
        if us > self._us:
            self.value, self._us = got, us


async def pull(
    store: ObjectStore,
    enricher: Optional[Enricher],
    url: str,
    collection: str,
    into: str,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    token: Optional[str] = None,
    page_size: int = 500,
    tlp: str = "green",
    lists: Any = None,
) -> Dict[str, int]:
    """Fetch new objects from a remote collection into local collection `into`; with an
    enricher, add a Note with VirusTotal's opinion and our own Indicator for risky values.
    Remote objects are hostile input: invalid ones are counted and left out. Indicators for a
    value on the [lists] ignore list (`lists`, else the enricher's) are left out too: the local
    collection is served, and an ignored value is never published."""
    creds = _credentials(user, password, token)
    coll = await asyncio.to_thread(find_collection, url, collection, **creds)
    state_key = f"pull:{coll.url}"
    added_after = store.get_state(state_key) or None
    started = stix.timestamp(time.time())
    seen = _DateAddedLast()
    coll._conn.session.hooks["response"].append(seen)

    def fetch() -> List[Dict[str, Any]]:
        objs: List[Dict[str, Any]] = []
        kwargs = {"added_after": added_after} if added_after else {}
        for env in as_pages(coll.get_objects, per_request=page_size, **kwargs):
            got = env.get("objects", []) if isinstance(env, dict) else []
            objs += got if isinstance(got, list) else []
        return objs

    pulled = await asyncio.to_thread(fetch)
    problems = await asyncio.to_thread(lambda: [problem(o) for o in pulled])
    objects = [o for o, why in zip(pulled, problems) if not why]
    counts = {"pulled": len(pulled), "rejected": len(pulled) - len(objects), "enriched": 0}
    lists = lists if lists is not None else getattr(enricher, "lists", None)
    if lists:
        kept = [o for o in objects if not _ignored(lists, o)]
        counts["ignored"] = len(objects) - len(kept)
        objects = kept
    new: List[Dict[str, Any]] = list(objects)
    if enricher is not None and objects:
        opinions = await _enrich(enricher, objects)
        now = time.time()
        risky: List[Enrichment] = []
        for obj in objects:
            results = [opinions[pair] for pair in observables(obj) if pair in opinions]
            if results:
                counts["enriched"] += len(results)
                new.append(opinion_note(obj, results, now))
                risky += results
        new += [o for o in stix.objects_for(risky, now, tlp) if o["type"] not in SHARED]
        new = [stix.PRODUCER, stix.marking(tlp), *new]
    counts["stored"] = sum(store.add(into, new)) if new else 0
    last = seen.value or _newest_modified(objects, started)
    if last:
        store.set_state(state_key, last)
    return counts


SHARED = ("identity", "marking-definition")


def _ignored(lists: Any, obj: Dict[str, Any]) -> bool:
    """Whether an indicator names a value on the [lists] ignore list."""
    for kind, value in observables(obj):
        try:
            obs = parse(value, kind)
        except InvalidObservable:
            continue
        rule = lists.match(obs)
        if rule is not None and rule.verdict is Verdict.SKIPPED:
            return True
    return False


async def _enrich(
    enricher: Enricher, objects: List[Dict[str, Any]]
) -> Dict[Tuple[str, str], Enrichment]:
    """VirusTotal's opinion of every observable in the pulled patterns: one enrich call per
    kind, so the core dedupes, caches and spends the quota as a batch."""
    by_kind: Dict[str, List[str]] = {}
    for obj in objects:
        for kind, value in observables(obj):
            by_kind.setdefault(kind, [])
            if value not in by_kind[kind]:
                by_kind[kind].append(value)
    out: Dict[Tuple[str, str], Enrichment] = {}
    for kind, values in by_kind.items():
        results = await enricher.enrich(
            values, kind=kind, priority=Priority.BULK, connector="taxii-pull"
        )
        out.update({(kind, v): r for v, r in zip(values, results)})
    return out


def _newest_modified(objects: List[Dict[str, Any]], started: str) -> str:
    """Fallback when the remote sends no X-TAXII-Date-Added-Last: the newest `modified`, never
    later than when this pull started (a future-dated object must not skip what comes next)."""
    stamps = [str(o.get("modified") or o.get("created") or "") for o in objects]
    stamps = [s for s in stamps if TS_RE.match(s)]
    return min(max(stamps), started) if stamps else ""


def push(
    store: ObjectStore,
    url: str,
    collection: str,
    source: str,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    token: Optional[str] = None,
    batch: int = 500,
    resend: bool = False,
) -> Dict[str, int]:
    """Send what local collection `source` got since the last push (everything with `resend`)
    to a remote collection, in batches, following each status resource until it is final. The
    position advances only past batches the remote finished with."""
    coll = find_collection(url, collection, **_credentials(user, password, token))
    state_key = f"push:{coll.url}:{source}"
    next_token = None if resend else store.get_state(state_key) or None
    sent = ok = failed = 0
    while True:
        page = store.query(source, limit=batch, next_token=next_token, versions=["all"])
        rows = [r for r in page.objects if stored_body_ok(r["body"])]
        if len(rows) < len(page.objects):  # stored by an older version: never sent to a peer
            log.warning("push: %d stored object(s) are not strict JSON; not sent",
                        len(page.objects) - len(rows))  # fmt: skip
        if rows:
            objs = [json.loads(r["body"]) for r in rows]
            status = coll.add_objects(
                {"objects": objs}, wait_for_completion=True, poll_interval=1, timeout=60
            )
            sent += len(objs)
            ok += int(status.success_count)
            failed += int(status.failure_count)
            if status.status != "complete":
                raise RuntimeError(f"the remote did not finish status {status.id} within 60 s")
        if page.objects:
            last = page.objects[-1]
            store.set_state(state_key, encode_next(last["date_added"], last["id"]))
        if not page.more:
            return {"sent": sent, "succeeded": ok, "failed": failed}
        next_token = page.next
