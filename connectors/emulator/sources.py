"""Handlers for IOC sources: collections, Livehunt notifications, the IoC Stream and
Intelligence search. Public-tier keys never reach the last three (the middleware answers 403)."""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any, Dict, List, Tuple

from aiohttp import web

from . import feeds
from .objects import COLLECTION_OF, InvalidArgument, NotFound
from .paging import page
from .responses import doc
from .state import EMULATOR, Emulator

HASH = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")


def _emu(request: web.Request) -> Emulator:
    emu = request.app[EMULATOR]
    emu.objects.base_url = f"{request.scheme}://{request.host}"
    return emu


def _descriptor(emu: Emulator, d: Dict[str, str]) -> Dict[str, str]:
    """Feeds name urls by address; the API names them by the sha256 of the address."""
    if d["type"] == "url" and "url" in d:
        return {"type": "url", "id": emu.objects.remember_url(d["url"])}
    return d


async def collection(request: web.Request) -> web.Response:
    emu = _emu(request)
    cid = request.match_info["id"]
    members = feeds.collection_members(emu.objects.synth, cid)
    if members is None:
        raise NotFound(f'Collection "{cid}" not found')
    rel = request.match_info.get("rel")
    base = f"{request.scheme}://{request.host}"
    if rel is None:
        return doc(feeds.collection_object(emu.objects.synth, cid, members, base))
    kind = feeds.COLLECTION_TYPES.get(rel)
    if kind is None:
        raise InvalidArgument(f"{rel!r} is not a valid relationship for collections")
    items = [
        _descriptor(
            emu, {"type": "url", "id": "", "url": v} if kind == "url" else {"type": kind, "id": v}
        )
        for v in members[kind]
    ]
    return page(request, items, emu.objects.full)


async def hunting(request: web.Request) -> web.Response:
    emu = _emu(request)

    def render(item: Tuple[str, Dict[str, Any]]) -> Dict[str, Any]:
        obj = emu.objects.full({"type": "file", "id": item[0]})
        obj["context_attributes"] = item[1]
        if int(item[0][:2], 16) % 4 == 0:
            feed_item_shape(obj["attributes"])
        return obj

    return page(request, feeds.hunting_notifications(emu.objects.synth), render)


async def ioc_stream(request: web.Request) -> web.Response:
    emu = _emu(request)
    flt = request.query.get("filter", "").strip()
    entity = flt.split(":", 1)[1] if flt.startswith("entity_type:") else None
    if flt and entity not in ("file", "url", "domain", "ip_address"):
        raise InvalidArgument(f"Unsupported filter {flt!r} (supported: entity_type:<type>)")
    only_descriptors = request.query.get("descriptors_only", "").lower() in ("true", "1")

    def render(item: Tuple[Dict[str, str], Dict[str, Any]]) -> Dict[str, Any]:
        d = _descriptor(emu, item[0])
        obj = dict(d) if only_descriptors else emu.objects.full(d)
        return {**obj, "context_attributes": item[1]}

    return page(request, feeds.ioc_stream(emu.objects.synth, entity), render)


def feed_item_shape(a: Dict[str, Any]) -> None:
    """Some feed items spell the stats key `typeUnsupported` and add `positives`/`total`."""
    stats = a.get("last_analysis_stats")
    if not isinstance(stats, dict) or "type-unsupported" not in stats:
        return
    stats["typeUnsupported"] = stats.pop("type-unsupported")
    a["positives"] = stats["malicious"]
    a["total"] = sum(stats.get(k, 0) for k in ("harmless", "malicious", "suspicious", "undetected"))


def _bare(emu: Emulator, value: str) -> List[Dict[str, Any]]:
    """A bare indicator: that object, or nothing when VirusTotal does not know it."""
    if HASH.match(value):
        collection, given = "files", value
    elif "://" in value:
        collection = "urls"
        given = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    else:
        try:
            ipaddress.ip_address(value)
            collection, given = "ip_addresses", value
        except ValueError:
            collection, given = "domains", value
    try:
        return [emu.objects.data(collection, given)]
    except NotFound:
        return []


async def search(request: web.Request) -> web.Response:
    emu = _emu(request)
    terms = feeds.parse_search(request.query.get("query", ""))
    if "value" in terms:
        return page(request, _bare(emu, terms["value"]), dict)
    out = []
    for raw in feeds.search_candidates(emu.objects.synth, terms):
        d = _descriptor(emu, raw)
        if not emu.objects.exists(COLLECTION_OF[d["type"]], d["id"]):
            continue
        obj = emu.objects.full(d)
        a = obj["attributes"]
        if not feeds.positives_match(terms, a["last_analysis_stats"]["malicious"]):
            continue
        if "tag" in terms and terms["tag"] not in a.get("tags", []):
            continue
        if "type" in terms and a.get("type_tag") != terms["type"]:
            continue
        out.append(obj)
    return page(request, out, dict)


def routes() -> List[web.RouteDef]:
    return [
        web.get("/api/v3/collections/{id}", collection),
        web.get("/api/v3/collections/{id}/{rel}", collection),
        web.get("/api/v3/intelligence/hunting_notification_files", hunting),
        web.get("/api/v3/ioc_stream", ioc_stream),
        web.get("/api/v3/intelligence/search", search),
    ]
