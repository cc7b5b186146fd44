"""TAXII 2.0 beside 2.1, on the same routes and collections, chosen by the Accept header
(FortiGate asks objects with `application/vnd.oasis.stix+json; version=2.0` and pages only the
2.0 way). 2.0 differs from 2.1 in: media types; the objects answer is a STIX 2.0 bundle;
paging by position (`Range: items N-M` -> 206 + `Content-Range: items N-M/TOTAL`, 416 past the
end; without Range the whole collection up to `[taxii] v20_max_objects`, past it a 206 that
says so); objects downgraded to STIX 2.0 (no spec_version, labels required, 2.1-only fields and
types left out). Served read-only: writes stay TAXII 2.1."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from . import filters, server
from .errors import TaxiiError
from .media import V20_STIX, V20_TAXII
from .pagination import date_headers, us_to_rfc3339

# Top-level types STIX 2.0 has (2.1 SCOs and newer SDOs have no 2.0 form).
TYPES_20 = ("attack-pattern", "campaign", "course-of-action", "identity", "indicator",
            "intrusion-set", "malware", "observed-data", "report", "threat-actor", "tool",
            "vulnerability", "relationship", "sighting", "marking-definition")  # fmt: skip
# Properties 2.1 added (common and per type) that 2.0 does not define.
DROP_COMMON = ("spec_version", "confidence", "lang", "extensions")
DROP = {
    "indicator": ("pattern_type", "pattern_version", "indicator_types"),
    "malware": ("malware_types", "is_family", "aliases", "first_seen", "last_seen",
                "operating_system_refs", "architecture_execution_envs",
                "implementation_languages", "capabilities", "sample_refs"),
    "identity": ("roles",),
    "marking-definition": ("name",),
    "threat-actor": ("threat_actor_types",),
    "tool": ("tool_types",),
    "report": ("report_types",),
}  # fmt: skip
# 2.0 requires labels on these; 2.1 moved them to <type>_types.
LABELS_FROM = {"indicator": ("indicator_types", "malicious-activity"),
               "malware": ("malware_types", "unknown"),
               "threat-actor": ("threat_actor_types", "unknown"),
               "tool": ("tool_types", "unknown"),
               "report": ("report_types", "threat-report")}  # fmt: skip
RANGE_RE = re.compile(r"^\s*items[ =]\s*(\d{1,15})\s*-\s*(\d{1,15})\s*\Z", re.ASCII)


REFS = ("id", "created_by_ref", "source_ref", "target_ref", "sighting_of_ref")
REF_LISTS = ("object_marking_refs", "object_refs", "where_sighted_refs", "observed_data_refs")


def id20(ref: str) -> str:
    """STIX 2.0 ids are UUIDv4 (2.1 allows our deterministic UUIDv5): the same UUID with the
    version nibble set to 4, so it stays stable and every reference still points at it."""
    kind, sep, rest = ref.partition("--")
    try:
        return f"{kind}--{uuid.UUID(int=uuid.UUID(rest).int, version=4)}" if sep else ref
    except ValueError:
        return ref


def ids21(ref: str) -> List[str]:
    """The stored ids a 2.0 id may stand for (id20 changed only the version nibble)."""
    kind, sep, rest = ref.partition("--")
    if not sep or len(rest) != 36:
        return [ref]
    return list(dict.fromkeys([ref] + [f"{kind}--{rest[:14]}{v}{rest[15:]}" for v in "12345678"]))


def downgrade(obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """A STIX 2.1 object as STIX 2.0, or None when 2.0 has no such type."""
    kind = obj.get("type")
    if kind not in TYPES_20:
        return None
    out = dict(obj)
    for key in REFS:
        if isinstance(out.get(key), str):
            out[key] = id20(out[key])
    for key in REF_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [id20(r) if isinstance(r, str) else r for r in out[key]]
    if isinstance(out.get("granular_markings"), list):
        out["granular_markings"] = [
            {**g, "marking_ref": id20(g["marking_ref"])}
            if isinstance(g, dict) and isinstance(g.get("marking_ref"), str)
            else g
            for g in out["granular_markings"]
        ]
    if kind in LABELS_FROM and not out.get("labels"):
        source, fallback = LABELS_FROM[kind]
        out["labels"] = list(obj.get(source) or [fallback])
    for key in DROP_COMMON + DROP.get(kind, ()):
        out.pop(key, None)
    if kind == "identity" and "identity_class" not in out:
        out["identity_class"] = "unknown"  # required in 2.0
    if kind == "malware" and "name" not in out:
        out["name"] = "unknown"  # required in 2.0
    return out


def bundle(objects: List[Dict[str, Any]]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                            "spec_version": "2.0"}  # fmt: skip
    if objects:
        body["objects"] = objects
    return body


def reply20(body: Any, media: str = V20_TAXII, status: int = 200,
            headers: Optional[Dict[str, str]] = None) -> web.Response:  # fmt: skip
    return web.Response(body=json.dumps(body, allow_nan=False).encode(), status=status,
                        headers={"Content-Type": media, **(headers or {})})  # fmt: skip


def requested_range(request: web.Request) -> Optional[Tuple[int, int]]:
    """(first, last) from `Range: items N-M` (also `items=N-M`, as taxii2-client sends first)."""
    header = request.headers.get("Range")
    if header is None:
        return None
    m = RANGE_RE.match(header)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise TaxiiError(400, "Range must be 'items N-M' with N <= M (TAXII 2.0)")
    return int(m.group(1)), int(m.group(2))


Window = Tuple[List[Dict[str, Any]], Dict[str, str], int]


def _window(request: web.Request, coll: Any, **fixed: Any) -> Window:
    """Rows for a TAXII 2.0 paged endpoint, the Content-Range headers and the HTTP status."""
    cfg = request.app[server.CONFIG]
    f = filters.parse(request.query, page_size=1, max_page_size=1,
                      allowed=("match[id]", "match[type]", "match[version]"))  # fmt: skip
    wanted = [t for t in f["types"] if t in TYPES_20] if f["types"] else list(TYPES_20)
    if not wanted:
        return [], {}, 200
    asked = requested_range(request)
    first, last = asked if asked else (0, cfg.v20_max_objects - 1)
    last = min(last, first + cfg.v20_max_objects - 1)  # a Range wider than the cap is capped
    rows, total = request.app[server.STORE].window(
        coll.id, offset=first, limit=last - first + 1, added_after=f.get("added_after"),
        ids=[i for v in f["ids"] for i in ids21(v)], types=wanted,
        versions=fixed.get("versions", f["versions"]),
    )  # fmt: skip
    if asked and first >= total and (first > 0 or total > 0):
        raise TaxiiError(416, f"Range starts past the last item ({total} in all)",
                         "Range Not Satisfiable")  # fmt: skip
    if not rows:
        return [], {}, 200
    end = first + len(rows) - 1
    headers = {"Content-Range": f"items {first}-{end}/{total}", **date_headers(rows)}
    partial = asked is not None or len(rows) < total  # past the cap: say there is more
    return rows, headers, 206 if partial else 200


# -- handlers ----------------------------------------------------------------------------------
async def discovery(request: web.Request) -> web.Response:
    cfg = request.app[server.CONFIG]
    base = cfg.public_url or f"{request.scheme}://{request.host}"
    root = f"{base}/{cfg.api_root}/"
    return reply20({"title": cfg.title, "description": cfg.description, "default": root,
                    "api_roots": [root]})  # fmt: skip


async def api_root(request: web.Request) -> web.Response:
    cfg = server._cfg(request)
    return reply20({"title": cfg.title, "description": cfg.description,
                    "versions": ["taxii-2.0"],
                    "max_content_length": cfg.max_body_bytes})  # fmt: skip


def _info(coll: Any, user: Optional[str]) -> Dict[str, Any]:
    info = server._collection_info(coll, user)
    return {**info, "can_write": False, "media_types": [V20_STIX]}  # 2.0 is read-only here


async def collections(request: web.Request) -> web.Response:
    cfg, user = server._cfg(request), request.get(server.USER)
    visible = [_info(c, user) for c in cfg.collections if c.can_read(user) or c.can_write(user)]
    return reply20({"collections": visible} if visible else {})


async def collection(request: web.Request) -> web.Response:
    return reply20(_info(server._collection(request), request.get(server.USER)))


async def get_objects(request: web.Request) -> web.Response:
    coll = server._collection(request)
    if "object" in request.match_info:
        oid = request.match_info["object"]
        if not filters.ID_RE.match(oid):
            raise TaxiiError(404, "no such object in this collection")
        fixed = filters.parse(request.query, page_size=1, max_page_size=1,
                              allowed=filters.OBJECT, paged=False)  # fmt: skip
        rows, total = request.app[server.STORE].window(
            coll.id, offset=0, limit=request.app[server.CONFIG].v20_max_objects, ids=ids21(oid),
            types=list(TYPES_20), versions=fixed["versions"],
        )  # fmt: skip
        if not rows:
            raise TaxiiError(404, "no such object in this collection (in STIX 2.0)")
        headers, status = date_headers(rows), 200
    else:
        rows, headers, status = _window(request, coll)
    objects = [o for o in (downgrade(json.loads(r["body"])) for r in rows) if o is not None]
    return reply20(bundle(objects), V20_STIX, status, headers)


async def manifest(request: web.Request) -> web.Response:
    coll = server._collection(request)
    rows, headers, status = _window(request, coll)
    items = [{"id": r["id"], "date_added": us_to_rfc3339(r["date_added"]),
              "versions": [server._version(r)], "media_types": [V20_STIX]}
             for r in rows]  # fmt: skip
    return reply20({"objects": items} if items else {}, V20_TAXII, status, headers)


async def status(request: web.Request) -> web.Response:
    response = await server.status(request)
    body = json.loads(response.body)  # type: ignore[arg-type]
    body["successes"] = [s["id"] for s in body.get("successes", [])]  # 2.0: identifiers
    body["failures"] = [{"id": f["id"], "message": f.get("message", "")}
                        for f in body.get("failures", [])]  # fmt: skip
    return reply20(body)


async def read_only(request: web.Request) -> web.Response:
    raise TaxiiError(406, "TAXII 2.0 is served read-only here; write and delete with TAXII 2.1 "
                     "(Accept: application/taxii+json;version=2.1)")  # fmt: skip


def beside(handler: server.Handler) -> server.Handler:
    """The route's 2.1 handler, answering with its 2.0 counterpart when the request asks 2.0."""
    v20 = {server.discovery: discovery, server.api_root: api_root,
           server.collections: collections, server.collection: collection,
           server.get_objects: get_objects, server.manifest: manifest,
           server.status: status}.get(handler, read_only)  # fmt: skip
    if handler is server.flat_feed:
        return handler

    async def either(request: web.Request) -> web.StreamResponse:
        return await (v20 if request.get(server.V20) else handler)(request)

    return either
