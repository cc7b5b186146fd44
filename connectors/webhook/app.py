"""The alert receiver: POST /v1/alerts/{format}, synchronous (?wait=SECONDS) or durable
asynchronous (202 + job), GET /v1/jobs/{id}, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.core.config import Settings
from connectors.core.enricher import Enricher
from connectors.core.quota import Priority
from connectors.core.verdict import Enrichment, Verdict

from . import auth, delivery, formats, payload, shapes
from .config import Source, WebhookConfig, load
from .outbox import Outbox

log = logging.getLogger(__name__)
JSON_TYPES = ("application/json", "application/x-ndjson", "text/plain", "application/jsonl")
ORDER = [Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNDETECTED, Verdict.HARMLESS,
         Verdict.NOT_FOUND]  # fmt: skip
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fail(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


class Receiver:
    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        self.cfg: WebhookConfig = load(settings.raw)
        self.enricher = enricher
        self.outbox = Outbox(self.cfg.outbox or settings.state_path / "webhook.db")
        self.replay = auth.ReplayGuard()
        self.buckets: Dict[str, List[float]] = {}
        self.wake = asyncio.Event()
        self.last_request = 0.0  # monotonic time of the last alert request
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vtconnect_webhook_requests",
            "Alert requests",
            ["source", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vtconnect_webhook_enrichment_seconds",
            "Time to enrich one alert",
            registry=self.registry,
        )
        self.jobs = Gauge(
            "vtconnect_webhook_jobs", "Jobs by state", ["state"], registry=self.registry
        )
        self.cache_hits = Gauge(
            "vtconnect_cache_hits_today", "Cache hits today (host-wide)", registry=self.registry
        )
        self.cache_misses = Gauge(
            "vtconnect_cache_misses_today", "Cache misses today (host-wide)", registry=self.registry
        )
        self.quota_left = Gauge(
            "vtconnect_quota_left_today",
            "API calls left today for the key (-1: no local limit)",
            registry=self.registry,
        )

    # -- enrichment ----------------------------------------------------------------------------
    async def enrich_alert(
        self, fmt: str, doc: Dict[str, Any], deadline: Optional[float], output: str = "vtconnect"
    ) -> Dict[str, Any]:
        started = time.monotonic()
        used, values = formats.indicators(fmt, doc)
        results = (
            await self.enricher.enrich(
                values, priority=Priority.ALERT, deadline=deadline, connector="webhook"
            )
            if values
            else []
        )
        self.latency.observe(time.monotonic() - started)
        found = [r for r in results if r.kind]
        return shapes.shape(output, doc, block(used, found), found)

    # -- handlers ------------------------------------------------------------------------------
    async def post_alert(self, request: web.Request) -> web.Response:
        fmt = request.match_info["format"]
        if fmt not in formats.FORMATS:
            return fail(404, "unknown_format", f"formats: {', '.join(formats.FORMATS)}")
        src = self.source_for(fmt, request.query.get("source"))
        if src is None:
            return fail(
                404, "unknown_source", "no configured source for this format; pass ?source=NAME"
            )
        response = await self._post(request, fmt, src)
        self.requests.labels(src.name, str(response.status)).inc()
        # key=value lines for log pipelines; never the body, a secret or a signature
        log.info(
            "event=alert source=%s format=%s status=%d remote=%s",
            src.name,
            fmt,
            response.status,
            request.remote,
        )
        return response

    async def _post(self, request: web.Request, fmt: str, src: Source) -> web.Response:
        self.last_request = time.monotonic()
        ctype = request.content_type.lower()
        if ctype not in JSON_TYPES and not ctype.endswith("+json"):
            return fail(415, "unsupported_media_type", "send JSON (application/json)")
        if (request.content_length or 0) > src.max_body_bytes:
            return fail(413, "too_large", f"at most {src.max_body_bytes} bytes")
        raw = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            raw += chunk
            if len(raw) > src.max_body_bytes:
                return fail(413, "too_large", f"at most {src.max_body_bytes} bytes")
        body = bytes(raw)
        try:
            auth.verify(
                src.auth,
                src.secret,
                request.headers,
                body,
                request.match_info.get("token"),
                src.header,
                src.username,
                self.replay,
            )
        except auth.AuthError as exc:
            return fail(401, "unauthorized", str(exc))
        retry = self.rate_limited(src)
        if retry:
            return fail(
                429, "rate_limited", "too many alerts from this source", {"Retry-After": str(retry)}
            )
        try:
            docs = payload.decode(body)
        except payload.PayloadError as exc:
            return fail(400, "bad_payload", str(exc))
        wait = request.query.get("wait")
        if wait is not None:
            try:
                seconds = float(wait)
                if not 0 < seconds <= self.cfg.max_wait:
                    raise ValueError
            except ValueError:
                return fail(
                    400, "bad_wait", f"wait must be a number of seconds up to {self.cfg.max_wait:g}"
                )
            output = request.query.get("shape", src.output)
            if output not in shapes.SHAPES:
                return fail(400, "bad_shape", f"shape must be one of {', '.join(shapes.SHAPES)}")
            out = [await self.enrich_alert(fmt, d, seconds, output) for d in docs]
            return web.json_response(out[0] if len(out) == 1 else {"alerts": out})
        idem = (
            request.headers.get("webhook-id")
            or formats.idempotency_key(formats.detect(docs[0]) if fmt == "auto" else fmt, docs[0])
            or "sha256:" + hashlib.sha256(body).hexdigest()
        )
        jid, new = self.outbox.accept(src.name, fmt, body, f"{src.name}/{idem}")
        if new:
            self.wake.set()
        return web.json_response(
            {"job": jid, "status": f"/v1/jobs/{jid}", "duplicate": not new},
            status=202 if new else 200,
        )

    def source_for(self, fmt: str, name: Optional[str]) -> Optional[Source]:
        if name:
            return self.cfg.sources.get(name)
        # The one source for exactly this format, else the one that takes any format.
        for wanted in (fmt, "auto"):
            matches = [s for s in self.cfg.sources.values() if s.format == wanted]
            if len(matches) == 1:
                return matches[0]
        return None

    def rate_limited(self, src: Source) -> int:
        now = time.monotonic()
        window = [t for t in self.buckets.get(src.name, []) if t > now - 60]
        if len(window) >= src.rate_per_minute:
            self.buckets[src.name] = window
            return max(1, int(window[0] + 60 - now) + 1)
        window.append(now)
        self.buckets[src.name] = window
        return 0

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.outbox.get(request.match_info["id"])
        if job is None:
            return fail(404, "unknown_job", "no such job")
        return web.json_response(job)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "jobs": self.outbox.counts()})

    async def metrics(self, request: web.Request) -> web.Response:
        for state, n in self.outbox.counts().items():
            self.jobs.labels(state).set(n)
        stats = self.enricher.cache.stats()
        self.cache_hits.set(stats["hits_today"])
        self.cache_misses.set(stats["misses_today"])
        left = self.enricher.governor.status().get("left_today")
        self.quota_left.set(-1 if left is None else left)
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )

    # -- the worker ----------------------------------------------------------------------------
    async def work(self) -> None:
        self.outbox.requeue_running()  # left running by a crash: do them again
        while True:
            jobs = self.outbox.claim()
            if not jobs:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            for job in jobs:
                # Accepting comes first: while alerts are arriving, enrich one job per gap
                # (at most 20 ms of waiting per job, so a steady stream never starves the queue).
                for _ in range(4):
                    if time.monotonic() - self.last_request > 0.002:
                        break
                    await asyncio.sleep(0.005)
                try:
                    docs = payload.decode(job["body"])
                    src = self.cfg.sources.get(job["source"])
                    output = src.output if src else "vtconnect"
                    alerts = [
                        await self.enrich_alert(job["format"], d, 300.0, output) for d in docs
                    ]
                    self.outbox.finish(
                        job["id"],
                        "done",
                        {"alerts": alerts},
                        deliver=bool(src and src.callback_url),
                    )
                except payload.PayloadError as exc:
                    self.outbox.finish(job["id"], "failed", {"error": str(exc)})
                except asyncio.CancelledError:
                    raise  # shutdown: the job stays "running" and is re-queued at start
                except Exception:  # a bug: keep the worker alive, keep the job for a retry
                    log.exception("job %s failed; it is queued again", job["id"])
                    self.outbox.requeue_running()
                    await asyncio.sleep(1.0)


async def deliver_loop(receiver: Receiver) -> None:
    """Send due callbacks; failures are retried with backoff, then dead-lettered."""
    async with aiohttp.ClientSession() as session:
        while True:
            due = receiver.outbox.due_deliveries()
            for job in due:
                src = receiver.cfg.sources.get(job["source"])
                attempts = job["attempts"] + 1
                if src is None or not src.callback_url:
                    receiver.outbox.retry_later(job["id"], attempts, 0, "no callback", True)
                    continue
                ok, error = await delivery.deliver(
                    session, src, job["id"], (job["result"] or "{}").encode()
                )
                if ok:
                    receiver.outbox.delivered(job["id"], attempts)
                else:
                    dead = attempts >= src.max_attempts
                    receiver.outbox.retry_later(
                        job["id"],
                        attempts,
                        time.time() + delivery.backoff(src, attempts),
                        error,
                        dead,
                    )
                    if dead:
                        log.warning("callback for job %s dead-lettered: %s", job["id"], error)
            await asyncio.sleep(0.05 if due else 0.25)


def block(fmt: str, results: List[Enrichment]) -> Dict[str, Any]:
    """The `enrichment` block added to an alert."""
    items = []
    for r in results:
        d = r.to_dict()
        pending = r.verdict == Verdict.ERROR and r.error == "deadline"
        items.append(
            {
                k: d[k]
                for k in (
                    "value",
                    "kind",
                    "verdict",
                    "score",
                    "reason",
                    "malicious",
                    "suspicious",
                    "harmless",
                    "undetected",
                    "link",
                )
            }
            | {"pending": pending}
        )
    known = [r.verdict for r in results if r.verdict in ORDER]
    overall = min(known, key=ORDER.index).value if known else "none"
    risky = [r for r in results if r.is_risky]
    summary = f"{len(risky)} of {len(results)} indicators risky" + (
        ": " + ", ".join(f"{r.normalized} {r.verdict.value} ({r.score})" for r in risky[:5])
        if risky
        else ""
    )
    return {
        "format": fmt,
        "verdict": overall,
        "is_risky": bool(risky),
        "summary": summary,
        "observables": items,
        "pending": sum(i["pending"] for i in items),
    }


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return fail(exc.status, "http", exc.reason)
    except Exception:  # a bug, never bad input (the tests show bad input stays 4xx)
        log.exception("webhook request failed")
        return fail(500, "internal", "internal error")


def build_app(settings: Settings, enricher: Enricher) -> web.Application:
    receiver = Receiver(settings, enricher)
    app = web.Application(middlewares=[errors])
    app[RECEIVER] = receiver
    app.router.add_post("/v1/alerts/{format}", receiver.post_alert)
    app.router.add_post("/v1/alerts/{format}/{token}", receiver.post_alert)
    app.router.add_get("/v1/jobs/{id}", receiver.get_job)
    app.router.add_get("/healthz", receiver.healthz)
    app.router.add_get("/metrics", receiver.metrics)

    async def worker(app: web.Application):  # type: ignore[no-untyped-def]
        tasks = [
            asyncio.ensure_future(receiver.work()),
            asyncio.ensure_future(deliver_loop(receiver)),
        ]
        yield
        for task in tasks:  # a job cut short stays "running" and is queued again at next start
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        receiver.outbox.close()

    app.cleanup_ctx.append(worker)
    return app


RECEIVER: web.AppKey[Receiver] = web.AppKey("receiver")
