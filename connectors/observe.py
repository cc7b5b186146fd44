"""What an operator sees of every server part: /healthz and Prometheus /metrics where a part has
none of its own (TAXII), an access log line per request for such parts (no bodies, no query
strings, no credentials: the route pattern stands for the path), failed authentication logged
and counted, the status page's routes, and JSON log lines on request.

One outermost middleware per part answers its own paths before the part's routing (TAXII's
`/{root}` would otherwise take `/healthz`) and times everything else. Composition root, like
serve.py: the parts know nothing of it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import web
from prometheus_client import Counter

from .core.enricher import Enricher
from .part_metrics import CONTENT_TYPE, PartMetrics

access_log = logging.getLogger("vtconnect.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessMetrics(PartMetrics):
    """The front door's count of a part's requests and failed logins."""

    def __init__(self, part: str) -> None:
        super().__init__(
            part, "Requests by route, method and status", ["route", "method", "status"]
        )
        self.auth_failures = self.declare(
            Counter, "auth_failures", "Requests refused for missing or wrong credentials"
        )


def install(
    app: web.Application,
    part: str,
    enricher: Enricher,
    extra: Optional[Dict[str, Handler]] = None,
) -> None:
    """Put the front door on `app`. `extra` maps exact paths to handlers (the status page)."""
    own = {r.canonical for r in app.router.resources()}
    paths: Dict[str, Handler] = dict(extra or {})
    metrics: Optional[AccessMetrics] = None
    if "/healthz" not in own:
        metrics = AccessMetrics(part)
        paths["/healthz"] = _healthz
        paths["/metrics"] = _metrics_handler(metrics, enricher)

    @web.middleware
    async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
        answer = paths.get(request.path)
        if answer is not None:
            return await answer(request)
        if metrics is None:  # the part logs and counts its own requests
            return await handler(request)
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route(request)
            metrics.requests.labels(route, request.method, str(status)).inc()
            fields = {"part": part, "client": request.remote or "-", "method": request.method,
                      "route": route, "status": status,
                      "ms": round(1000 * (time.monotonic() - started), 1)}  # fmt: skip
            if status == 401 and "Authorization" in request.headers:
                metrics.auth_failures.inc()
                access_log.warning("event=auth_failed %s", _kv(fields), extra={"fields": fields})
            else:
                access_log.info("event=request %s", _kv(fields), extra={"fields": fields})

    app.middlewares.insert(0, front_door)


def _route(request: web.Request) -> str:
    """The matched route's pattern (`/{root}/collections/{collection}/objects/`): no values,
    no query string, so nothing a client sent (a token in a path) reaches the log."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _kv(fields: Dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _metrics_handler(metrics: PartMetrics, enricher: Enricher) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        body = metrics.exposition(enricher)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    return handler


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`--log-format json`), with an access line's fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: Dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(fmt: str) -> None:
    """Server logging: access lines at INFO whatever -v says, JSON lines when asked."""
    access_log.setLevel(logging.INFO)
    if fmt == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
