"""Handlers for objects, relationships, analyses and uploads under /api/v3."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Dict, List

from aiohttp import BodyPartReader, web

from .objects import TYPE_OF, InvalidArgument, NotFound
from .paging import page
from .responses import doc, error
from .state import EMULATOR, Emulator


def _emu(request: web.Request) -> Emulator:
    emu = request.app[EMULATOR]
    emu.objects.base_url = f"{request.scheme}://{request.host}"
    return emu


def _analysis_descriptor(request: web.Request, aid: str) -> Dict[str, Any]:
    base = f"{request.scheme}://{request.host}"
    return {"type": "analysis", "id": aid, "links": {"self": f"{base}/api/v3/analyses/{aid}"}}


async def get_object(request: web.Request) -> web.Response:
    emu = _emu(request)
    rels = [r for r in request.query.get("relationships", "").split(",") if r.strip()]
    data = emu.objects.data(
        request.match_info["collection"], request.match_info["id"], [r.strip() for r in rels]
    )
    return doc(data)


async def get_related(request: web.Request) -> web.Response:
    """GET /{collection}/{id}/{rel} (full objects) and .../relationships/{rel} (descriptors)."""
    emu = _emu(request)
    collection, rel = request.match_info["collection"], request.match_info["rel"]
    oid = emu.objects.data(collection, request.match_info["id"])["id"]  # 400/404 like GET
    items = emu.objects.related(collection, oid, rel)
    if request.match_info.get("descriptors"):
        return page(request, items, dict)
    return page(request, items, emu.objects.full)


async def analyse(request: web.Request) -> web.Response:
    emu = _emu(request)
    collection = request.match_info["collection"]
    oid = emu.objects.data(collection, request.match_info["id"])["id"]
    return doc(_analysis_descriptor(request, emu.objects.new_analysis(collection, oid)))


async def post_url(request: web.Request) -> web.Response:
    emu = _emu(request)
    form = await request.post()
    url = form.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgument("The url field is required")
    oid = emu.objects.remember_url(url.strip())
    return doc(_analysis_descriptor(request, emu.objects.new_analysis("urls", oid)))


async def upload_url(request: web.Request) -> web.Response:
    emu = _emu(request)
    token = secrets.token_urlsafe(16)
    emu.uploads[token] = True
    base = f"{request.scheme}://{request.host}"
    return web.json_response({"data": f"{base}/api/v3/_upload/{token}"})


async def post_file(request: web.Request) -> web.StreamResponse:
    """POST /files (32 MB) or POST to an upload URL (650 MB): multipart field `file`, hashed
    while it streams in, never held in memory."""
    emu = _emu(request)
    token = request.match_info.get("token")
    if token is not None and not emu.uploads.pop(token, False):
        raise NotFound("Upload URL unknown or already used")
    limit = emu.config.upload_url_limit if token else emu.config.direct_upload_limit
    too_large = error(
        413,
        "PayloadTooLargeError",
        f"File larger than {limit} bytes"
        + ("" if token else "; get an upload URL from /files/upload_url"),
    )
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        return too_large
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise InvalidArgument("Expected multipart/form-data with a file field") from None
    part = await reader.next()
    while part is not None and getattr(part, "name", None) != "file":
        await part.release()
        part = await reader.next()
    if part is None or not isinstance(part, BodyPartReader):
        raise InvalidArgument("The file field is required")
    md5, sha1, sha256, size = hashlib.md5(), hashlib.sha1(), hashlib.sha256(), 0
    while True:
        chunk = await part.read_chunk(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return too_large
        for h in (md5, sha1, sha256):
            h.update(chunk)
    aid = emu.objects.register_upload(md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest(), size)
    return doc(_analysis_descriptor(request, aid))


async def get_analysis(request: web.Request) -> web.Response:
    emu = _emu(request)
    aid = request.match_info["id"]
    a = emu.objects.analyses.get(aid)
    if a is None:
        raise NotFound(f'Analysis "{aid}" not found')
    a["polls"] += 1
    done = a["polls"] > emu.config.polls_until_complete
    collection, oid = a["collection"], a["id"]
    obj = emu.objects.attributes(collection, oid)
    stats = obj["last_analysis_stats"]
    attrs: Dict[str, Any] = {
        "date": a["date"],
        "status": "completed" if done else "queued",
        "stats": dict(stats) if done else dict.fromkeys(stats, 0),
        "results": obj["last_analysis_results"] if done else {},
    }
    meta: Dict[str, Any] = {}
    if collection == "files":
        md5, sha1, size = emu.objects.file_hashes[oid]
        meta["file_info"] = {"sha256": oid, "md5": md5, "sha1": sha1, "size": size}
    elif collection == "urls":
        meta["url_info"] = {"id": oid, "url": emu.objects.url_alias[oid]}
    data = {**_analysis_descriptor(request, aid), "attributes": attrs}
    return doc(data, **meta)


def routes() -> List[web.RouteDef]:
    kinds = "{collection:" + "|".join(TYPE_OF) + "}"
    return [
        web.get("/api/v3/files/upload_url", upload_url),
        web.post("/api/v3/files", post_file),
        web.post("/api/v3/_upload/{token}", post_file),
        web.post("/api/v3/urls", post_url),
        web.get("/api/v3/analyses/{id}", get_analysis),
        web.get(f"/api/v3/{kinds}/{{id}}", get_object),
        web.post(f"/api/v3/{kinds}/{{id}}/analyse", analyse),
        web.get(f"/api/v3/{kinds}/{{id}}/{{descriptors:relationships}}/{{rel}}", get_related),
        web.get(f"/api/v3/{kinds}/{{id}}/{{rel}}", get_related),
    ]
