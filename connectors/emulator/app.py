"""The VirusTotal API v3 emulator as an aiohttp application.

vt-py talks to it unchanged (`vt.Client(key, host=url)`). Answers use VirusTotal's shapes and
error JSON; every answer carries `X-VT-Emulator: 1` and object answers `meta.emulator = true`.
Control endpoints under /_emulator/ count calls, reset state and change faults at run time.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional

from aiohttp import web

from . import feeds, synth
from .faults import STATUS, Faults
from .objects import TYPE_OF, InvalidArgument, Objects
from .quota import TIERS, TierQuota

DIRECT_UPLOAD_LIMIT = 32 * 1024 * 1024
UPLOAD_URL_LIMIT = 650 * 1024 * 1024
PREMIUM_ONLY = ("/api/v3/intelligence/", "/api/v3/ioc_stream")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator")


@dataclass
class EmulatorConfig:
    default_tier: str = "unlimited"  # for keys not listed in `keys`
    keys: Dict[str, str] = field(default_factory=dict)  # key -> tier
    accept_any_key: bool = True
    faults: Faults = field(default_factory=Faults)
    polls_until_complete: int = 1  # GET /analyses/{id} answers "queued" this many times first

    def __post_init__(self) -> None:
        for tier in [self.default_tier, *self.keys.values()]:
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r} (known: {', '.join(TIERS)})")
        if isinstance(self.faults, dict):
            self.faults = Faults.from_mapping(self.faults)


def error(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def doc(data: Any, **meta: Any) -> web.Response:
    return web.json_response({"data": data, "meta": {"emulator": True, **meta}})


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.objects = Objects()
        self.quotas: Dict[str, TierQuota] = {}
        self.uploads: Dict[str, bool] = {}  # upload_url tokens
        self.reset_counters()

    def reset_counters(self) -> None:
        self.counters: Dict[str, Any] = {
            "requests": 0,
            "by_endpoint": collections.Counter(),
            "by_status": collections.Counter(),
            "by_key": collections.Counter(),
        }

    # -- middleware ------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/v3"):
            resp = await handler(request)
            resp.headers["X-VT-Emulator"] = "1"
            return resp
        resource = request.match_info.route.resource
        endpoint = f"{request.method} {resource.canonical if resource else request.path}"
        key = request.headers.get("X-Apikey", "")
        resp = await self._api(request, handler, key)
        resp.headers["X-VT-Emulator"] = "1"
        c = self.counters
        c["requests"] += 1
        c["by_endpoint"][endpoint] += 1
        c["by_status"][str(resp.status)] += 1
        c["by_key"][hashlib.sha256(key.encode()).hexdigest()[:8] if key else "-"] += 1
        return resp

    async def _api(self, request: web.Request, handler: Handler, key: str) -> web.StreamResponse:
        if not key:
            return error(401, "AuthenticationRequiredError", "X-Apikey header is missing")
        if key == "disabled-key":
            return error(403, "UserNotActiveError", "User is not active")
        tier = self.config.keys.get(key)
        if tier is None:
            if not self.config.accept_any_key:
                return error(401, "WrongCredentialsError", "Wrong API key")
            tier = self.config.default_tier
        quota = self.quotas.setdefault(key, TierQuota.for_tier(tier))
        if quota.take():
            return error(
                429,
                "QuotaExceededError",
                "Quota exceeded",
                {"Retry-After": str(quota.retry_after())},
            )
        if tier == "public" and request.path.startswith(PREMIUM_ONLY):
            return error(403, "ForbiddenError", "This endpoint needs a premium API key")
        faults = self.config.faults
        if faults.active():
            delay = faults.delay()
            if delay:
                await asyncio.sleep(delay)
            fault = faults.pick()
            if fault == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault == "timeout":
                await asyncio.sleep(faults.timeout_s)
            elif fault == "malformed":
                return web.Response(
                    status=200, body=b'{"data": {"type": "fi', content_type="application/json"
                )
            elif fault:
                if fault == "ServerError":
                    return web.Response(status=500, text="Internal Server Error")
                return error(STATUS[fault], fault, "injected fault")
        try:
            return await handler(request)
        except InvalidArgument as exc:
            return error(400, "InvalidArgumentError", str(exc))
        except KeyError as exc:
            return error(404, "NotFoundError", f"{exc.args[0] if exc.args else 'object'} not found")
        except web.HTTPException:
            raise
        except Exception as exc:  # the emulator answers like a server error, never crashes
            return error(500, "ServerError", f"{type(exc).__name__}")

    # -- objects ---------------------------------------------------------------------------
    def base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _params(self, request: web.Request) -> tuple:
        try:
            limit = int(request.query.get("limit", "10"))
            offset = (
                int(base64.urlsafe_b64decode(request.query["cursor"]).decode())
                if request.query.get("cursor")
                else 0
            )
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("invalid limit or cursor") from None
        if not 1 <= limit <= 40 or offset < 0:
            raise InvalidArgument("limit must be between 1 and 40")
        return limit, offset

    def page(
        self, request: web.Request, items: List[Any], render: Callable[[Any], Any], **meta: Any
    ) -> web.Response:
        """VirusTotal's cursor paging, as vt-py's iterator consumes it."""
        limit, offset = self._params(request)
        chunk = items[offset : offset + limit]
        body: Dict[str, Any] = {
            "data": [render(x) for x in chunk],
            "meta": {"emulator": True, "count": len(items), **meta},
            "links": {"self": str(request.url)},
        }
        if offset + limit < len(items):
            cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            body["meta"]["cursor"] = cursor
            body["links"]["next"] = str(request.url.update_query(cursor=cursor, limit=limit))
        return web.json_response(body)

    async def get_object(self, request: web.Request) -> web.Response:
        self.objects.base_url = self.base(request)
        collection = request.match_info["collection"]
        rels = [r for r in request.query.get("relationships", "").split(",") if r]
        return doc(self.objects.data(collection, request.match_info["id"], rels))

    async def get_related(self, request: web.Request) -> web.Response:
        self.objects.base_url = self.base(request)
        collection = request.match_info["collection"]
        oid, _ = self.objects.resolve(collection, request.match_info["id"])
        self.objects.data(collection, request.match_info["id"])  # 404 when the object is unknown
        items = self.objects.related(collection, oid, request.match_info["rel"])
        if request.match_info.get("descriptors"):
            return self.page(request, items, lambda d: d)
        return self.page(request, items, self.objects.full)

    async def analyse(self, request: web.Request) -> web.Response:
        collection = request.match_info["collection"]
        self.objects.data(collection, request.match_info["id"])
        oid, _ = self.objects.resolve(collection, request.match_info["id"])
        return doc({"type": "analysis", "id": self.objects.new_analysis(collection, oid)})

    async def post_url(self, request: web.Request) -> web.Response:
        form = await request.post()
        url = form.get("url")
        if not isinstance(url, str) or not url.strip():
            raise InvalidArgument("the url field is required")
        url = url.strip()
        oid = synth.sha256_hex(url)
        self.objects.url_alias[oid] = url
        return doc(
            {
                "type": "analysis",
                "id": self.objects.new_analysis("urls", oid),
                "links": {"self": f"{self.base(request)}/api/v3/analyses/u-{oid}"},
            }
        )

    async def upload_url(self, request: web.Request) -> web.Response:
        token = base64.urlsafe_b64encode(
            hashlib.sha256(str(len(self.uploads)).encode()).digest()[:12]
        ).decode()
        self.uploads[token] = True
        return web.json_response({"data": f"{self.base(request)}/api/v3/_upload/{token}"})

    async def post_file(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token")
        if token is not None and not self.uploads.pop(token, False):
            return error(404, "NotFoundError", "upload URL unknown or already used")
        limit = UPLOAD_URL_LIMIT if token else DIRECT_UPLOAD_LIMIT
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError):
            raise InvalidArgument("expected multipart/form-data with a file field") from None
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "file":
            part = await reader.next()
        if part is None:
            raise InvalidArgument("the file field is required")
        md5, sha1, sha256, size = hashlib.md5(), hashlib.sha1(), hashlib.sha256(), 0
        while True:
            chunk = await part.read_chunk(1 << 16)  # type: ignore[union-attr]
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return error(
                    413,
                    "PayloadTooLargeError",
                    f"file larger than {limit // (1024 * 1024)} MB; use /files/upload_url"
                    if not token
                    else "file larger than 650 MB",
                )
            for h in (md5, sha1, sha256):
                h.update(chunk)
        aid = self.objects.register_upload(
            md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest(), size
        )
        return doc({"type": "analysis", "id": aid})

    async def get_analysis(self, request: web.Request) -> web.Response:
        aid = request.match_info["id"]
        a = self.objects.analyses.get(aid)
        if a is None:
            raise KeyError(aid)
        a["polls"] += 1
        done = a["polls"] > self.config.polls_until_complete
        collection, oid = a["collection"], a["id"]
        attrs: Dict[str, Any] = {
            "date": a["date"],
            "status": "completed" if done else "queued",
            "stats": {},
            "results": {},
        }
        if done:
            obj = self.objects.attributes(collection, oid)
            attrs["stats"] = obj["last_analysis_stats"]
            attrs["results"] = obj["last_analysis_results"]
        meta: Dict[str, Any] = {}
        if collection == "files":
            md5, sha1, size = self.objects.file_hashes[oid]
            meta["file_info"] = {"sha256": oid, "md5": md5, "sha1": sha1, "size": size}
        elif collection == "urls":
            meta["url_info"] = {"id": oid, "url": self.objects.url_alias[oid]}
        return doc({"type": "analysis", "id": aid, "attributes": attrs}, **meta)

    # -- IOC sources -----------------------------------------------------------------------
    async def collection(self, request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        members = feeds.collection_members(cid)
        if members is None:
            raise KeyError(cid)
        rel = request.match_info.get("rel")
        if rel is None:
            return doc(feeds.collection_object(cid, members, self.base(request)))
        kind = feeds.COLLECTION_TYPES.get(rel)
        if kind is None:
            raise InvalidArgument(f"{rel} is not a valid relationship for collections")
        ids = members[kind]
        if kind == "url":
            for u in ids:
                self.objects.url_alias[synth.sha256_hex(u)] = u
            ids = [synth.sha256_hex(u) for u in ids]
        return self.page(request, [{"type": kind, "id": i} for i in ids], self.objects.full)

    async def hunting(self, request: web.Request) -> web.Response:
        def render(item: Any) -> Dict[str, Any]:
            obj = self.objects.full({"type": "file", "id": item[0]})
            obj["context_attributes"] = item[1]
            return obj

        return self.page(request, feeds.hunting_notifications(), render)

    async def ioc_stream(self, request: web.Request) -> web.Response:
        flt = request.query.get("filter", "")
        entity = flt.split(":", 1)[1] if flt.startswith("entity_type:") else None
        if flt and entity not in ("file", "url", "domain", "ip_address"):
            raise InvalidArgument(f"unsupported filter {flt!r}")
        only_descriptors = request.query.get("descriptors_only", "").lower() == "true"

        def render(item: Any) -> Dict[str, Any]:
            d, ctx = dict(item[0]), item[1]
            url = d.pop("url", None)
            if url:
                self.objects.url_alias[d["id"]] = url
            obj = d if only_descriptors else self.objects.full(d)
            return {**obj, "context_attributes": ctx}

        return self.page(request, feeds.ioc_stream(entity), render)

    async def search(self, request: web.Request) -> web.Response:
        terms = feeds.parse_search(request.query.get("query", ""))
        if "value" in terms:
            value = terms["value"]
            for collection, convert in (
                ("files", None),
                ("ip_addresses", None),
                ("domains", None),
                ("urls", "url"),
            ):
                try:
                    given = (
                        base64.urlsafe_b64encode(value.encode()).decode().strip("=")
                        if convert
                        else value
                    )
                    data = self.objects.data(collection, given)
                except (InvalidArgument, KeyError):
                    continue
                return self.page(request, [data], lambda d: d)
            return self.page(request, [], lambda d: d)
        minimum = int(terms.get("p", "0").rstrip("+"))
        out = []
        for d in feeds.search_candidates(terms):
            if d["type"] == "url":
                oid = synth.sha256_hex(d["url"])
                self.objects.url_alias[oid] = d["url"]
                d = {"type": "url", "id": oid}
            obj = self.objects.full(d)
            a = obj["attributes"]
            if a["last_analysis_stats"]["malicious"] < minimum:
                continue
            if "tag" in terms and terms["tag"] not in a.get("tags", []):
                continue
            if "type" in terms and a.get("type_tag") != terms["type"]:
                continue
            out.append(obj)
        return self.page(request, out, lambda d: d)

    # -- control ---------------------------------------------------------------------------
    async def counters_view(self, request: web.Request) -> web.Response:
        c = self.counters
        return web.json_response(
            {
                "requests": c["requests"],
                "by_endpoint": dict(c["by_endpoint"]),
                "by_status": dict(c["by_status"]),
                "by_key": dict(c["by_key"]),
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.reset_counters()
        self.quotas.clear()
        self.objects.overrides.clear()
        self.objects.analyses.clear()
        return web.json_response({"reset": True})

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.config.faults = Faults.from_mapping(await request.json())
        except (ValueError, json.JSONDecodeError) as exc:
            return error(400, "InvalidArgumentError", str(exc))
        return web.json_response({"faults": "set"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "emulator": True})


def create_app(config: Optional[EmulatorConfig] = None) -> web.Application:
    emu = Emulator(config or EmulatorConfig())
    app = web.Application(middlewares=[emu.middleware], client_max_size=1024 * 1024)
    app[EMULATOR] = emu
    collections_re = "{collection:files|urls|domains|ip_addresses}"
    r = app.router
    r.add_get("/api/v3/files/upload_url", emu.upload_url)
    r.add_post("/api/v3/files", emu.post_file)
    r.add_post("/api/v3/_upload/{token}", emu.post_file)
    r.add_post("/api/v3/urls", emu.post_url)
    r.add_get("/api/v3/analyses/{id}", emu.get_analysis)
    r.add_get(f"/api/v3/{collections_re}/{{id}}", emu.get_object)
    r.add_post(f"/api/v3/{collections_re}/{{id}}/analyse", emu.analyse)
    r.add_get(
        f"/api/v3/{collections_re}/{{id}}/{{descriptors:relationships}}/{{rel}}", emu.get_related
    )
    r.add_get(f"/api/v3/{collections_re}/{{id}}/{{rel}}", emu.get_related)
    r.add_get("/api/v3/collections/{id}", emu.collection)
    r.add_get("/api/v3/collections/{id}/{rel}", emu.collection)
    r.add_get("/api/v3/intelligence/hunting_notification_files", emu.hunting)
    r.add_get("/api/v3/ioc_stream", emu.ioc_stream)
    r.add_get("/api/v3/intelligence/search", emu.search)
    r.add_get("/_emulator/counters", emu.counters_view)
    r.add_post("/_emulator/reset", emu.reset)
    r.add_post("/_emulator/faults", emu.set_faults)
    r.add_get("/_emulator/health", emu.health)

    async def not_found(request: web.Request) -> web.Response:
        return error(404, "NotFoundError", f"{request.path} is not an API endpoint")

    r.add_route("*", "/api/v3/{tail:.*}", not_found)
    assert TYPE_OF  # the four object collections the routes above serve
    return app
