"""POST /v1/enrich: thin clients (CLIs with `--remote`, other hosts) enrich through the hub, so
they share its budget, cache and verdict log. The answer holds exactly the objects
`vtconnect lookup --format json` prints.

Served on the webhook receiver's listener (serve.py adds the route), so errors have its JSON
shape: {"error": code, "message": text}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.core.config import Settings
from connectors.core.enricher import Enricher
from connectors.core.gateway import CredentialsRejected
from connectors.core.quota import Priority
from connectors.core.records import rows
from connectors.core.verdict import Enrichment
from connectors.request_bodies import read_capped

from .config import (
    DEFAULT_DEADLINE,
    MAX_BODY_BYTES,
    MAX_DEADLINE,
    MAX_VALUES,
    PRIORITIES,
    ApiConfig,
    Client,
    load,
)

log = logging.getLogger(__name__)
TYPES = ("auto", "file", "hash", "md5", "sha1", "sha256", "url", "domain", "ip", "ipv4", "ipv6")
BODY_KEYS = ("values", "type", "priority", "deadline")
MAX_VALUE_CHARS = 8192  # as the CLI's longest input line
BODY_TIMEOUT = 30.0  # seconds the body may take to arrive
PRIORITY_HEADER = "X-Vtconnect-Priority"  # the priority the values were looked up with
RENDERED_MAX = 2 * MAX_VALUES  # answers whose JSON is kept, at most (~2 KB each)


class Rendered:
    """The JSON of each answer rendered once. A warm answer is the enricher's remembered
    Enrichment itself, the same object request after request (until its memo entry is
    renewed), so its rendering is kept by identity, with the object, so that the id cannot be
    reused while the entry lives. Answers are never changed once returned, so what was
    rendered stays exact. Answers not from the cache (fresh lookups, skipped values, errors)
    are new objects every time and are rendered per request. At most as many are kept as the
    enricher remembers ([cache] lru_size), and at most RENDERED_MAX, the oldest out first."""

    def __init__(self, size: int) -> None:
        self.size = max(0, min(size, RENDERED_MAX))  # 0: the enricher remembers no answers
        self._kept: OrderedDict[int, Tuple[Enrichment, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def body(self, results: Sequence[Enrichment]) -> bytes:
        """Exactly json.dumps({"results": rows(results)}, ensure_ascii=False), as UTF-8."""
        kept = self._kept
        parts: List[bytes] = []
        add = parts.append
        for enr in results:
            hit = kept.get(id(enr))
            if hit is not None and hit[0] is enr:
                add(hit[1])
                continue
            one = json.dumps(rows((enr,))[0], ensure_ascii=False).encode("utf-8")
            if enr.cached and self.size:
                while len(kept) >= self.size:
                    kept.popitem(last=False)
                kept[id(enr)] = (enr, one)
            add(one)
        return b'{"results": [' + b", ".join(parts) + b"]}"


def fail(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


class BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Hub:
    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        self.cfg: ApiConfig = load(settings.raw)
        self.enricher = enricher
        self.body_timeout = BODY_TIMEOUT
        self.rendered = Rendered(settings.cache.lru_size)

    def client(self, request: web.Request) -> Optional[Client]:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        return self.cfg.client_for(header[7:].strip())

    async def enrich(self, request: web.Request) -> web.Response:
        client = self.client(request)
        response = await self._enrich(request, client)
        log.info(
            "event=enrich client=%s status=%d remote=%s",
            client.name if client else "-",
            response.status,
            request.remote,
        )
        return response

    async def _enrich(self, request: web.Request, client: Optional[Client]) -> web.Response:
        ctype = request.content_type.lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            return fail(415, "unsupported_media_type", "send JSON (application/json)")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return fail(413, "too_large", f"at most {MAX_BODY_BYTES} bytes")
        if client is None:
            return fail(
                401,
                "unauthorized",
                "missing or wrong bearer token (`vtconnect api token NAME` makes one)",
                {"WWW-Authenticate": 'Bearer realm="vtconnect hub"'},
            )
        try:
            body = await asyncio.wait_for(read_capped(request, MAX_BODY_BYTES), self.body_timeout)
        except asyncio.TimeoutError:
            return fail(408, "timeout", f"the body did not arrive within {self.body_timeout:g} s")
        except (web.RequestPayloadError, BadHttpMessage) as exc:  # e.g. gzip that is not
            return fail(400, "bad_body", f"the body cannot be read: {type(exc).__name__}")
        if body is None:
            return fail(413, "too_large", f"at most {MAX_BODY_BYTES} bytes")
        try:
            ask = parse(body, client)
        except BadRequest as exc:
            status = 413 if exc.code == "too_many_values" else 400
            return fail(status, exc.code, str(exc))
        values, kind, priority, deadline = ask
        try:
            results = await self.enricher.enrich(
                values, kind=kind, priority=priority, deadline=deadline, connector=client.name
            )
        except CredentialsRejected as exc:  # our configuration, not the client's request
            log.error("VirusTotal rejected the API key: %s", exc.code)
            return fail(503, "credentials_rejected", "VirusTotal rejected the hub's API key")
        return web.Response(
            body=self.rendered.body(results),
            content_type="application/json",
            charset="utf-8",
            headers={PRIORITY_HEADER: priority.name.lower()},
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(body: bytes, client: Client) -> Any:
    """(values, kind, priority, deadline) from a request body, or BadRequest saying why.
    A priority above the client's own is lowered to it (see README: "The hub")."""
    try:
        doc = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest("bad_json", f"the body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise BadRequest("bad_request", "the body must be a JSON object")
    unknown = sorted(set(doc) - set(BODY_KEYS))
    if unknown:
        raise BadRequest("unknown_key", f"unknown key {unknown[0][:64]!r} (known: "
                         f"{', '.join(BODY_KEYS)})")  # fmt: skip
    values = doc.get("values")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadRequest("bad_values", "values must be a list of strings")
    if len(values) > MAX_VALUES:
        raise BadRequest("too_many_values", f"at most {MAX_VALUES} values per request")
    if any(len(v) > MAX_VALUE_CHARS for v in values):
        raise BadRequest("bad_values", f"a value is longer than {MAX_VALUE_CHARS} characters")
    kind = doc.get("type", "auto")
    if kind not in TYPES:
        raise BadRequest("bad_type", f"type must be one of {', '.join(TYPES)}")
    asked = doc.get("priority", client.priority.name.lower())
    if asked not in PRIORITIES:
        raise BadRequest("bad_priority", f"priority must be one of {', '.join(PRIORITIES)}")
    priority = Priority(max(Priority.parse(asked), client.priority))  # higher value = lower
    deadline = doc.get("deadline", DEFAULT_DEADLINE)
    if (
        isinstance(deadline, bool)
        or not isinstance(deadline, (int, float))
        or not (isinstance(deadline, int) or math.isfinite(deadline))
        or not 0 < deadline <= MAX_DEADLINE
    ):
        raise BadRequest(
            "bad_deadline", f"deadline must be a number of seconds above 0, at most "
            f"{MAX_DEADLINE:g}"
        )  # fmt: skip
    return values, kind, priority, float(deadline)


HUB: web.AppKey[Hub] = web.AppKey("hub")


def add_routes(app: web.Application, settings: Settings, enricher: Enricher) -> None:
    """POST /v1/enrich on `app` (the webhook receiver's application)."""
    hub = Hub(settings, enricher)
    app[HUB] = hub
    app.router.add_post("/v1/enrich", hub.enrich)
