"""TAXII 2.1 server (aiohttp): discovery, API root, collections, objects, manifest, versions,
status. Lenient in (media types, trailing slashes), strict out (application/taxii+json;
version=2.1, TAXII error JSON for every error, never a 500 for bad input)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as _dt
import hashlib
import json
import logging
import re
from typing import Any, Awaitable, Callable, Dict, List, Optional

import stix2
from aiohttp import web

from connectors.core.config import Settings
from connectors.core.enricher import Enricher

from . import config as taxii_config
from . import feeds
from .publisher import publisher_task
from .store import BadToken, Store, new_status_id, us_to_rfc3339

log = logging.getLogger(__name__)
MEDIA = "application/taxii+json;version=2.1"
ACCEPTED = ("application/taxii+json", "application/json", "*/*", "application/*")
STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", taxii_config.TaxiiConfig)
USER = web.RequestKey("user", str)  # the authenticated user; absent for anonymous requests
ID_RE = re.compile(r"^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.description = status, title, description


def reply(body: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": MEDIA, **(headers or {})},
    )


def error(
    status: int, title: str, description: str = "", headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return reply(
        {"title": title, "description": description, "http_status": str(status)}, status, headers
    )


def _accepts(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "*/*")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ACCEPTED:
            version = re.search(r"version\s*=\s*([\d.]+)", part)
            if version is None or version.group(1) == "2.1":
                return True
    return False


@web.middleware
async def taxii_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if not request.path.startswith("/feeds/") and not _accepts(request):
            raise TaxiiError(406, "Not Acceptable", f"this server answers {MEDIA}")
        user = authenticate(request)
        if user is not None:
            request[USER] = user
        return await handler(request)
    except TaxiiError as exc:
        headers = (
            {"WWW-Authenticate": 'Basic realm="vtconnect TAXII"'} if exc.status == 401 else None
        )
        return error(exc.status, exc.title, exc.description, headers)
    except web.HTTPException as exc:  # routing: unknown path, wrong method
        return error(exc.status, exc.reason, "")
    except Exception:  # a bug, never bad input: log it, answer as TAXII does
        log.exception("TAXII request failed")
        return error(500, "Internal Server Error")


def authenticate(request: web.Request) -> Optional[str]:
    cfg = request.app[CONFIG]
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise TaxiiError(401, "Unauthorized", "malformed Basic credentials") from None
        encoded = cfg.users.get(user)
        if encoded and taxii_config.verify_password(password, encoded):
            return user
    elif scheme.lower() == "bearer":
        user = cfg.tokens.get(hashlib.sha256(value.strip().encode()).hexdigest())
        if user:
            return user
    raise TaxiiError(401, "Unauthorized", "unknown user, wrong password or token")


def _collection(request: web.Request, write: bool = False) -> taxii_config.Collection:
    cfg = request.app[CONFIG]
    coll = cfg.collection(request.match_info["collection"])
    user = request.get(USER)
    if coll is None or not (coll.can_read(user) or coll.can_write(user)):
        if user is None:
            raise TaxiiError(401, "Unauthorized", "authentication required")
        raise TaxiiError(404, "Not Found", "no such collection")
    if (write and not coll.can_write(user)) or (not write and not coll.can_read(user)):
        raise TaxiiError(
            403 if user else 401,
            "Forbidden" if user else "Unauthorized",
            "not allowed on this collection",
        )
    return coll


def _collection_info(coll: taxii_config.Collection, user: Optional[str]) -> Dict[str, Any]:
    return {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "can_read": coll.can_read(user),
        "can_write": coll.can_write(user),
        "media_types": [MEDIA],
    }


def _timestamp_us(value: str, name: str) -> int:
    if not TS_RE.match(value):
        raise TaxiiError(400, "Bad Request", f"{name} must be an RFC 3339 UTC timestamp")
    try:
        t = _dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise TaxiiError(400, "Bad Request", f"{name} is not a valid date") from None
    frac = value[20:-1] if "." in value else ""
    return int(t.timestamp()) * 1_000_000 + int((frac + "000000")[:6] or 0)


def _filters(request: web.Request, versions_default: str = "last") -> Dict[str, Any]:
    q = request.query
    cfg = request.app[CONFIG]
    known = {
        "added_after",
        "limit",
        "next",
        "match[id]",
        "match[type]",
        "match[version]",
        "match[spec_version]",
    }
    unknown = [k for k in q if k not in known]
    if unknown:
        raise TaxiiError(400, "Bad Request", f"unsupported parameter {unknown[0]}")
    out: Dict[str, Any] = {"limit": cfg.page_size}
    if "limit" in q:
        try:
            out["limit"] = int(q["limit"])
        except ValueError:
            raise TaxiiError(400, "Bad Request", "limit must be a positive integer") from None
        if out["limit"] < 1:
            raise TaxiiError(400, "Bad Request", "limit must be a positive integer")
    out["limit"] = min(out["limit"], cfg.max_page_size)
    if "added_after" in q:
        out["added_after"] = _timestamp_us(q["added_after"], "added_after")
    if q.get("next"):
        out["next_token"] = q["next"]

    def split(name: str) -> List[str]:
        return [v for v in q.get(name, "").split(",") if v]

    out["ids"], out["types"], out["spec_versions"] = (
        split("match[id]"),
        split("match[type]"),
        split("match[spec_version]"),
    )
    versions = split("match[version]") or [versions_default]
    for v in versions:
        if v not in ("first", "last", "all") and not TS_RE.match(v):
            raise TaxiiError(
                400, "Bad Request", f"match[version]={v} is not first, last, all or a timestamp"
            )
    out["versions"] = versions
    return out


def _page(request: web.Request, coll: taxii_config.Collection, **extra: Any):
    try:
        return request.app[STORE].query(coll.id, **{**_filters(request), **extra})
    except BadToken as exc:
        raise TaxiiError(400, "Bad Request", str(exc)) from None


def _date_headers(rows: List[Dict[str, Any]]) -> Dict[str, str]:
    if not rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": us_to_rfc3339(rows[0]["date_added"]),
        "X-TAXII-Date-Added-Last": us_to_rfc3339(rows[-1]["date_added"]),
    }


def _envelope(page, items: List[Any], key: str) -> Dict[str, Any]:
    body: Dict[str, Any] = {"more": page.more}
    if page.more:
        body["next"] = page.next
    if items:
        body[key] = items
    return body


# -- handlers ----------------------------------------------------------------------------------
async def discovery(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    root = f"{request.scheme}://{request.host}/{cfg.api_root}/"
    return reply(
        {"title": cfg.title, "description": cfg.description, "default": root, "api_roots": [root]}
    )


def _api_root(request: web.Request) -> taxii_config.TaxiiConfig:
    cfg = request.app[CONFIG]
    if request.match_info["root"] != cfg.api_root:
        raise TaxiiError(404, "Not Found", "no such API root")
    return cfg


async def api_root(request: web.Request) -> web.Response:
    cfg = _api_root(request)
    return reply(
        {
            "title": cfg.title,
            "description": cfg.description,
            "versions": [MEDIA],
            "max_content_length": cfg.max_body_bytes,
        }
    )


async def collections(request: web.Request) -> web.Response:
    cfg = _api_root(request)
    user = request.get(USER)
    visible = [
        _collection_info(c, user) for c in cfg.collections if c.can_read(user) or c.can_write(user)
    ]
    return reply({"collections": visible} if visible else {})


async def collection(request: web.Request) -> web.Response:
    _api_root(request)
    return reply(_collection_info(_collection(request), request.get(USER)))


async def get_objects(request: web.Request) -> web.Response:
    _api_root(request)
    coll = _collection(request)
    extra = {}
    if "object" in request.match_info:
        extra["ids"] = [request.match_info["object"]]
    page = _page(request, coll, **extra)
    if "object" in request.match_info and not page.objects:
        raise TaxiiError(404, "Not Found", "no such object")
    objs = [json.loads(r["body"]) for r in page.objects]
    return reply(_envelope(page, objs, "objects"), headers=_date_headers(page.objects))


async def manifest(request: web.Request) -> web.Response:
    _api_root(request)
    page = _page(request, _collection(request))
    items = [
        {
            "id": r["id"],
            "date_added": us_to_rfc3339(r["date_added"]),
            "version": r["modified"],
            "media_type": "application/stix+json;version=2.1",
        }
        for r in page.objects
    ]
    return reply(_envelope(page, items, "objects"), headers=_date_headers(page.objects))


async def versions(request: web.Request) -> web.Response:
    _api_root(request)
    coll = _collection(request)
    page = _page(request, coll, ids=[request.match_info["object"]], versions=["all"])
    if not page.objects:
        raise TaxiiError(404, "Not Found", "no such object")
    return reply(
        _envelope(page, [r["modified"] for r in page.objects], "versions"),
        headers=_date_headers(page.objects),
    )


async def delete_object(request: web.Request) -> web.Response:
    _api_root(request)
    coll = _collection(request, write=True)
    versions_ = [
        v
        for v in request.query.get("match[version]", "").split(",")
        if v and v not in ("all", "first", "last")
    ]
    if not request.app[STORE].delete(coll.id, request.match_info["object"], versions_):
        raise TaxiiError(404, "Not Found", "no such object")
    return web.Response(status=200, headers={"Content-Type": MEDIA})


def _problem(obj: Any) -> str:
    """Why an object is not stored, or "" (the checks consumers rely on)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    oid, otype = obj.get("id"), obj.get("type")
    if (
        not isinstance(otype, str)
        or not isinstance(oid, str)
        or not ID_RE.match(oid)
        or not oid.startswith(otype + "--")
    ):
        return "type and id (<type>--<UUID>) are required and must agree"
    if obj.get("spec_version", "2.1") != "2.1":
        return "only spec_version 2.1 is accepted"
    for key in ("created", "modified"):
        if key in obj and (not isinstance(obj[key], str) or not TS_RE.match(obj[key])):
            return f"{key} must be an RFC 3339 UTC timestamp"
    if otype not in ("marking-definition",) and "created" in obj and "modified" not in obj:
        return "modified is required on versioned objects"
    try:  # the full STIX 2.1 rules (patterns, vocabularies, references), custom objects allowed
        stix2.parse(obj, allow_custom=True)
    except Exception as exc:  # stix2 raises many exception types for invalid objects
        return f"invalid STIX 2.1: {str(exc).splitlines()[0][:300]}"
    return ""


async def add_objects(request: web.Request) -> web.Response:
    _api_root(request)
    coll = _collection(request, write=True)
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype not in ("application/taxii+json", "application/json"):
        raise TaxiiError(415, "Unsupported Media Type", f"send {MEDIA}")
    cfg = request.app[CONFIG]
    if (request.content_length or 0) > cfg.max_body_bytes:
        raise TaxiiError(413, "Payload Too Large", f"at most {cfg.max_body_bytes} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):  # read() may return less
        raw += chunk
        if len(raw) > cfg.max_body_bytes:
            break
    if len(raw) > cfg.max_body_bytes:
        raise TaxiiError(413, "Payload Too Large", f"at most {cfg.max_body_bytes} bytes")
    try:
        envelope = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError):
        raise TaxiiError(400, "Bad Request", "body is not JSON") from None
    objects = envelope.get("objects") if isinstance(envelope, dict) else None
    if not isinstance(objects, list) or not objects:
        raise TaxiiError(
            422, "Unprocessable Entity", "an envelope with a non-empty objects list is required"
        )
    good, failures = [], []
    # stix2 validates patterns at ~1 ms an object: off the event loop.
    problems = await asyncio.to_thread(lambda: [_problem(o) for o in objects])
    for obj, why in zip(objects, problems):
        if why:
            oid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else ""
            failures.append(
                {
                    "id": oid,
                    "version": str(obj.get("modified", "")) if isinstance(obj, dict) else "",
                    "message": why,
                }
            )
        else:
            good.append(obj)
    stored = request.app[STORE].add(coll.id, good) if good else []
    successes = [
        {"id": o["id"], "version": o.get("modified", o.get("created", ""))}
        for o, _ in zip(good, stored)
    ]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status = {
        "id": new_status_id(),
        "status": "complete",
        "request_timestamp": now,
        "total_count": len(objects),
        "success_count": len(successes),
        "successes": successes,
        "failure_count": len(failures),
        "failures": failures,
        "pending_count": 0,
    }
    request.app[STORE].save_status(coll.id, status)
    return reply(status, 202)


async def status(request: web.Request) -> web.Response:
    _api_root(request)
    body = request.app[STORE].status(request.match_info["status"])
    if body is None or not request.get(USER):
        raise TaxiiError(
            404 if request.get(USER) else 401,
            "Not Found" if request.get(USER) else "Unauthorized",
            "no such status",
        )
    return reply(body)


async def flat_feed(request: web.Request) -> web.Response:
    coll = _collection(request)
    kind, _, ext = request.match_info["name"].partition(".")
    if kind not in feeds.KINDS or ext not in ("txt", "csv"):
        raise TaxiiError(
            404,
            "Not Found",
            "feeds are <kind>.txt or <kind>.csv with kind one of " + ", ".join(feeds.KINDS),
        )
    store, items, token = request.app[STORE], [], None
    now = feeds.now_rfc3339()
    while True:  # every page of the collection's indicators, latest versions only
        page = store.query(coll.id, limit=1000, types=["indicator"], next_token=token)
        items += [e for e in feeds.entries(iter(page.objects), now) if kind in ("all", e[0])]
        if not page.more:
            break
        token = page.next
    return feeds.render(items, ext)


def build_app(settings: Settings, enricher: Optional[Enricher]) -> web.Application:
    """The TAXII part of `vtconnect serve`; a publisher task follows the core's verdict log when
    an enricher is given and a collection asks for verdicts."""
    cfg = taxii_config.load(settings.raw)
    app = web.Application(middlewares=[taxii_middleware], client_max_size=cfg.max_body_bytes + 1)
    store = Store(cfg.store or settings.state_path / "taxii.db")
    app[CONFIG], app[STORE] = cfg, store
    r = app.router
    col = "/{root}/collections/{collection}"
    routes = [
        ("GET", "/taxii2", discovery),
        ("GET", "/{root}", api_root),
        ("GET", "/{root}/collections", collections),
        ("GET", col, collection),
        ("GET", col + "/objects", get_objects),
        ("POST", col + "/objects", add_objects),
        ("GET", col + "/objects/{object}", get_objects),
        ("DELETE", col + "/objects/{object}", delete_object),
        ("GET", col + "/objects/{object}/versions", versions),
        ("GET", col + "/manifest", manifest),
        ("GET", "/{root}/status/{status}", status),
    ]
    routes.append(("GET", "/feeds/{collection}/{name}", flat_feed))
    for method, path, handler in routes:
        # Consumers differ on trailing slashes; accept both without redirecting.
        r.add_route(method, path + "/", handler)
        r.add_route(method, path, handler)
    if enricher is not None and (cfg.sources or any(c.publish for c in cfg.collections)):
        app.cleanup_ctx.append(publisher_task(enricher, store, cfg))

    async def close_store(app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    return app
