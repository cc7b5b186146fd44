"""TAXII 2.1 server (aiohttp): discovery, API root, collections, objects, object, versions,
manifest, status, plus flat feeds. Lenient in (media types, trailing slashes), strict out
(application/taxii+json;version=2.1, a TAXII error resource for every error, never a 500 for bad
input). `build_app(settings, enricher)` is the TAXII part of `vtconnect serve`."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
from importlib import resources
from typing import Any, Awaitable, Callable, Dict, List, Optional

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.core.config import Settings
from connectors.core.enricher import Enricher
from connectors.core.lists import Lists
from connectors.core.lists import matcher as lists_matcher
from connectors.request_bodies import invite, last_line, read_capped
from connectors.request_bodies import settled as _settled

from . import auth, feed_http, feed_options, feeds, filters, media
from . import config as taxii_config
from .errors import MEDIA, STIX_MEDIA, TaxiiError, error, reply
from .pagination import BadToken, date_headers, envelope, us_to_rfc3339
from .publisher import publisher_task
from .store import ObjectStore, Page, new_status_id, store_for
from .validate import problem, read_envelope, stored_body_ok

log = logging.getLogger(__name__)
STORE = web.AppKey("store", ObjectStore)
CONFIG = web.AppKey("config", taxii_config.TaxiiConfig)
AUTH = web.AppKey("auth", auth.Authenticator)
FEED_LISTS = web.AppKey("feed_lists", Lists)  # [lists]: allow-listed values stay off feeds
FEED_CACHE = web.AppKey("feed_cache", feed_http.FeedCache)
# The authenticated user; absent for anonymous requests. RequestKey is aiohttp 3.14+ (Python 3.10+).
USER = web.RequestKey("user", str) if hasattr(web, "RequestKey") else "user"
V20 = web.RequestKey("v20", bool) if hasattr(web, "RequestKey") else "v20"
REALM = "vtconnect TAXII"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def taxii_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if not request.path.startswith("/feeds/") and media.check_accept(request):
            request[V20] = True  # routes answer TAXII 2.0 (taxii/v20.py)
        user = await request.app[AUTH].user(request.headers.get("Authorization", ""))
        if user is not None:
            request[USER] = user
        return await _settled(request, await handler(request))
    except TaxiiError as exc:
        headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if exc.status == 401 else None
        return await _settled(request, _as_v20(request, error(exc.status, exc.title,
                                                              exc.description, headers)))
    except web.HTTPException as exc:  # routing: unknown path, wrong method
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return await _settled(request, _as_v20(request, error(exc.status, exc.reason, "", allow)))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # a bug, never bad input: log it, answer as TAXII does
        log.exception("TAXII request failed: %s %s", request.method, request.path)
        return error(500, "Internal Server Error")


def _as_v20(request: web.Request, response: web.Response) -> web.Response:
    """An error to a TAXII 2.0 request: the same JSON error resource, in 2.0's media type."""
    if request.get(V20):
        response.headers["Content-Type"] = media.V20_TAXII
    return response


def _cfg(request: web.Request) -> taxii_config.TaxiiConfig:
    cfg = request.app[CONFIG]
    if "root" in request.match_info and request.match_info["root"] != cfg.api_root:
        raise TaxiiError(404, "no such API root")
    return cfg


def _collection(request: web.Request, write: bool = False) -> taxii_config.Collection:
    cfg = _cfg(request)
    return auth.collection(cfg, request.match_info["collection"], request.get(USER), write)


def _collection_info(coll: taxii_config.Collection, user: Optional[str]) -> Dict[str, Any]:
    return {"id": coll.id, "title": coll.title, "description": coll.description,
            "can_read": coll.can_read(user), "can_write": coll.can_write(user),
            "media_types": [STIX_MEDIA]}  # fmt: skip


def _query(
    request: web.Request, coll: taxii_config.Collection, allowed=filters.OBJECTS, **fixed: Any
) -> Page:
    cfg = request.app[CONFIG]
    kwargs = filters.parse(
        request.query, page_size=cfg.page_size, max_page_size=cfg.max_page_size, allowed=allowed
    )
    try:
        return request.app[STORE].query(coll.id, **{**kwargs, **fixed})
    except BadToken as exc:
        raise TaxiiError(400, str(exc)) from None


def _paged(page: Page, items: List[Any], key: str) -> web.Response:
    body = envelope(page.more, page.next, items, key)
    return reply(body, headers=date_headers(page.objects))


def _version(row: Dict[str, Any]) -> str:
    """A version as its producer wrote it (the store keeps one canonical spelling to compare);
    objects without modified/created (SCOs) are versioned by when they were added."""
    if not row["modified"]:
        return us_to_rfc3339(row["date_added"])
    own = json.loads(row["body"])
    return str(own.get("modified") or own.get("created") or row["modified"])


# -- handlers ----------------------------------------------------------------------------------
async def discovery(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    base = cfg.public_url or f"{request.scheme}://{request.host}"
    root = f"{base}/{cfg.api_root}/"
    return reply({"title": cfg.title, "description": cfg.description, "default": root,
                  "api_roots": [root]})  # fmt: skip


async def api_root(request: web.Request) -> web.Response:
    cfg = _cfg(request)
    return reply({"title": cfg.title, "description": cfg.description, "versions": [MEDIA],
                  "max_content_length": cfg.max_body_bytes})  # fmt: skip


async def collections(request: web.Request) -> web.Response:
    cfg, user = _cfg(request), request.get(USER)
    visible = [_collection_info(c, user) for c in cfg.collections
               if c.can_read(user) or c.can_write(user)]  # fmt: skip
    return reply({"collections": visible} if visible else {})


async def collection(request: web.Request) -> web.Response:
    return reply(_collection_info(_collection(request), request.get(USER)))


async def get_objects(request: web.Request) -> web.Response:
    coll = _collection(request)
    if "object" in request.match_info:
        page = _query(request, coll, filters.OBJECT, ids=[request.match_info["object"]])
        if not page.objects and not request.query.get("next"):
            raise TaxiiError(404, "no such object in this collection")
    else:
        page = _query(request, coll)
    # Stored bodies are JSON already: splice them into the envelope instead of re-encoding.
    head = json.dumps(envelope(page.more, page.next, [], "objects"))[:-1]
    bodies = ",".join(r["body"] for r in page.objects)
    if not stored_body_ok(bodies):  # stored before ingest refused NaN and lone surrogates
        good = [r["body"] for r in page.objects if stored_body_ok(r["body"])]
        log.warning("collection %s: %d stored object(s) are not strict JSON; left out",
                    coll.id, len(page.objects) - len(good))  # fmt: skip
        bodies = ",".join(good)
    tail = f', "objects": [{bodies}]}}' if bodies else "}"
    return web.Response(
        body=(head + tail).encode(),
        headers={"Content-Type": MEDIA, **date_headers(page.objects)},
    )


async def manifest(request: web.Request) -> web.Response:
    page = _query(request, _collection(request))
    items = [{"id": r["id"], "date_added": us_to_rfc3339(r["date_added"]), "version": _version(r),
              "media_type": STIX_MEDIA} for r in page.objects]  # fmt: skip
    return _paged(page, items, "objects")


async def versions(request: web.Request) -> web.Response:
    coll = _collection(request)
    page = _query(request, coll, filters.VERSIONS, ids=[request.match_info["object"]],
                  versions=["all"])  # fmt: skip
    if not page.objects and not request.query.get("next"):
        raise TaxiiError(404, "no such object in this collection")
    items = [_version(r) for r in page.objects]
    return _paged(page, items, "versions")


async def delete_object(request: web.Request) -> web.Response:
    coll = _collection(request, write=True)
    f = filters.parse(request.query, page_size=1, max_page_size=1, allowed=filters.OBJECT,
                      paged=False)  # fmt: skip
    wanted = f["versions"] if "match[version]" in request.query else ["all"]
    if not request.app[STORE].delete(coll.id, request.match_info["object"], wanted):
        raise TaxiiError(404, "no such object (or version) in this collection")
    return web.Response(status=200, headers={"Content-Type": MEDIA})


async def _body(request: web.Request, cap: int) -> bytes:
    if (request.content_length or 0) > cap:
        raise TaxiiError(413, f"at most {cap} bytes")
    try:
        raw = await read_capped(request, cap)
    except (web.RequestPayloadError, BadHttpMessage) as exc:  # e.g. gzip data that is not
        raise TaxiiError(400, f"the body cannot be read: {last_line(exc)}") from None
    if raw is None:
        raise TaxiiError(413, f"at most {cap} bytes")
    return raw


async def expect(request: web.Request) -> Optional[web.Response]:
    """`Expect: 100-continue`: a body announced above the cap is refused before it is invited."""
    cap = request.app[CONFIG].max_body_bytes
    refusal = None
    if request.headers.get("Expect", "").lower() != "100-continue":
        refusal = error(417, "Expectation Failed", "only Expect: 100-continue is understood")
    elif (request.content_length or 0) > cap:
        refusal = error(413, "Payload Too Large", f"at most {cap} bytes")
    return await invite(request, refusal)


async def add_objects(request: web.Request) -> web.Response:
    coll = _collection(request, write=True)
    media.check_body_type(request)
    objects, clean = read_envelope(await _body(request, request.app[CONFIG].max_body_bytes))
    store = request.app[STORE]
    # Checking, storing and the status resource in one worker thread: objects the fast check
    # cannot vouch for cost stix2 ~2 ms each, and the store blocks.
    return reply(await asyncio.to_thread(_ingest, store, coll.id, objects, clean), 202)


def _ingest(store: ObjectStore, coll: str, objects: List[Any], clean: bool) -> Dict[str, Any]:
    problems = [problem(o, clean=clean) for o in objects]
    good = [o for o, why in zip(objects, problems) if not why]
    failures = [
        {"id": o["id"] if isinstance(o, dict) and isinstance(o.get("id"), str) else "",
         "version": str(o.get("modified", "")) if isinstance(o, dict) else "", "message": why}
        for o, why in zip(objects, problems) if why
    ]  # fmt: skip
    if good:  # one transaction: every valid object is stored, or none is
        store.add(coll, good)
    successes = [{"id": o["id"], "version": o.get("modified", o.get("created", ""))} for o in good]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status = {
        "id": new_status_id(), "status": "complete", "request_timestamp": now,
        "total_count": len(objects), "success_count": len(successes), "successes": successes,
        "failure_count": len(failures), "failures": failures, "pending_count": 0,
    }  # fmt: skip
    store.save_status(coll, status)
    return status


async def status(request: web.Request) -> web.Response:
    _cfg(request)
    user = request.get(USER)
    if user is None:
        raise TaxiiError(401, "authentication required")
    found = request.app[STORE].status(request.match_info["status"])
    coll = request.app[CONFIG].collection(found[0]) if found else None
    if found is None or coll is None or not (coll.can_write(user) or coll.can_read(user)):
        raise TaxiiError(404, "no such status")
    return reply(found[1])


def _feed_options(request: web.Request, base: feed_options.FeedOptions, ext: str
                  ) -> feed_options.FeedOptions:  # fmt: skip
    try:
        options = feed_options.apply(base, request.query)
    except feed_options.BadOption as exc:
        raise TaxiiError(400, str(exc)) from None
    if feed_options.EXTENSION[options.format] != ext:
        raise TaxiiError(404, f"a {options.format} feed is served as "
                         f".{feed_options.EXTENSION[options.format]}")  # fmt: skip
    return options


async def flat_feed(request: web.Request) -> web.Response:
    """/feeds/{collection}/{kind}.txt|.csv (options as query parameters) or a named feed,
    /feeds/{name}.txt|.csv ([[taxii.feeds]]); rights are the collection's."""
    if "collection" in request.match_info:
        coll = _collection(request)
        kind, _, ext = request.match_info["name"].partition(".")
        if kind not in feeds.KINDS or ext not in ("txt", "csv"):
            raise TaxiiError(404, "feeds are <kind>.txt or <kind>.csv, kind one of "
                             + ", ".join(feeds.KINDS))  # fmt: skip
        base = feed_options.FeedOptions(kind=kind, format="plain" if ext == "txt" else "csv")
    else:
        name, _, ext = request.match_info["name"].partition(".")
        named = next((f for f in request.app[CONFIG].feeds if f.name == name), None)
        if named is None:
            raise TaxiiError(404, "no such feed ([[taxii.feeds]] names them)")
        coll = auth.collection(request.app[CONFIG], named.collection, request.get(USER), False)
        base = named.options
    options = _feed_options(request, base, ext)
    return await feed_http.respond(request, request.app[STORE], coll.id, options,
                                   request.app[FEED_LISTS], request.app[FEED_CACHE])  # fmt: skip


OPENAPI = resources.files(__package__).joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of these routes (shipped as package data)."""
    return web.Response(body=OPENAPI, content_type="application/json")


def build_app(settings: Settings, enricher: Optional[Enricher]) -> web.Application:
    """The TAXII part of `vtconnect serve`. With an enricher, a background task publishes the
    core's verdict log and polls the configured VirusTotal sources; it stops on app cleanup."""
    cfg = taxii_config.load(settings.raw)
    app = web.Application(middlewares=[taxii_middleware], client_max_size=cfg.max_body_bytes + 1)
    store = store_for(settings, cfg.store)
    app[CONFIG], app[STORE], app[AUTH] = cfg, store, auth.Authenticator(cfg)
    app[FEED_LISTS], app[FEED_CACHE] = lists_matcher(settings.lists), feed_http.FeedCache()
    col = "/{root}/collections/{collection}"
    app.router.add_get("/openapi.json", openapi)  # before /{root}, which would match it
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
        ("GET", "/feeds/{collection}/{name}", flat_feed),
        ("GET", "/feeds/{name}", flat_feed),
    ]
    from . import v20  # it uses this module's helpers

    for method, path, handler in routes:
        handler = v20.beside(handler)  # TAXII 2.0 on the same route, by Accept
        # Consumers differ on trailing slashes; accept both without redirecting.
        kw = {"expect_handler": expect} if method == "POST" else {}
        app.router.add_route(method, path + "/", handler, **kw)
        app.router.add_route(method, path, handler, **kw)
    if enricher is not None and (cfg.sources or any(c.publish for c in cfg.collections)):
        app.cleanup_ctx.append(publisher_task(enricher, store, cfg))

    async def close_store(app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    return app
