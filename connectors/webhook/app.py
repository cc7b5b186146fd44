"""The alert receiver: POST /v1/alerts/{format}, synchronous (?wait=SECONDS) or durable
asynchronous (202 + job), GET /v1/jobs/{id}, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.core import evidence
from connectors.core.config import Settings
from connectors.core.enricher import Enricher
from connectors.core.gateway import CredentialsRejected
from connectors.core.quota import Priority
from connectors.core.verdict import Enrichment, Verdict
from connectors.request_bodies import invite, last_line, read_capped
from connectors.request_bodies import settled as _settled

from . import auth, delivery, formats, payload, shapes
from .config import Source, WebhookConfig, load
from .metrics import CONTENT_TYPE, Metrics
from .outbox import outbox_for

log = logging.getLogger(__name__)
JSON_TYPES = ("application/json", "application/x-ndjson", "text/plain", "application/jsonl")
ORDER = [Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNDETECTED, Verdict.HARMLESS,
         Verdict.NOT_FOUND]  # fmt: skip
JOB_TRIES = 3  # transient errors (disk, database) before a job is marked failed
JOB_RETRY = 2.0  # seconds before such a job is tried again, times the tries so far
# What may pass: anything else a job raises is a bug its alert triggers, which fails alike on
# every try, so the job is marked failed at once instead of holding the queue.
TRANSIENT = (OSError, sqlite3.OperationalError, asyncio.TimeoutError, MemoryError)
BODY_TIMEOUT = 30.0  # seconds a request body may take to arrive
PRUNE_EVERY = 3600.0  # seconds between clean-ups of old finished jobs (the first one at start)
CREDENTIALS_RETRY = 30.0  # seconds between tries while VirusTotal rejects the API key
CREDENTIALS_MESSAGE = (
    "VirusTotal rejected the API key; alerts sent without ?wait are kept and enriched once the "
    "key is fixed"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fail(
    status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None
) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


class Receiver:
    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        self.cfg: WebhookConfig = load(settings.raw)
        self.enricher = enricher
        self.outbox = outbox_for(settings, self.cfg)
        self.replay = auth.ReplayGuard()
        self.buckets: Dict[str, List[float]] = {}
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()  # shutdown: finish the job in hand, claim no more
        self.last_request = 0.0  # monotonic time of the last alert request
        self.last_prune = -PRUNE_EVERY  # the first idle moment cleans up
        self.body_timeout = BODY_TIMEOUT
        self.job_failures: Dict[str, int] = {}  # unexpected errors per job, this process
        self.stats = Metrics()
        # Extraction is CPU work (~60 ms for 16 KB of free text, several times that on the first
        # call): off the event loop, one at a time (the extractors' parser caches are shared).
        self.extractor = ThreadPoolExecutor(1, thread_name_prefix="extract")
        self.job_key = self.outbox.job_key()

    # -- enrichment ----------------------------------------------------------------------------
    async def enrich_alert(
        self, fmt: str, doc: Dict[str, Any], deadline: Optional[float], output: str = "vtconnect"
    ) -> Dict[str, Any]:
        started = time.monotonic()
        emails = self.enricher.settings.privacy.extract_email_domains
        loop = asyncio.get_running_loop()
        used, values = await loop.run_in_executor(
            self.extractor, formats.indicators, fmt, doc, emails
        )
        results = (
            await self.enricher.enrich(
                values, priority=Priority.ALERT, deadline=deadline, connector="webhook"
            )
            if values
            else []
        )
        self.stats.latency.observe(time.monotonic() - started)
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
        self.stats.requests.labels(src.name, str(response.status)).inc()
        # key=value lines for log pipelines; never the body, a secret or a signature
        log.info(
            "event=alert source=%s format=%s status=%d remote=%s",
            src.name,
            fmt,
            response.status,
            request.remote,
        )
        return response

    async def expect(self, request: web.Request) -> Optional[web.Response]:
        """`Expect: 100-continue`: what would be refused without reading the body is refused
        before the body is invited."""
        if request.headers.get("Expect", "").lower() != "100-continue":
            return fail(417, "expectation_failed", "only Expect: 100-continue is understood")
        fmt = request.match_info["format"]
        src = self.source_for(fmt, request.query.get("source"))
        refusal = (
            fail(404, "unknown_format", f"formats: {', '.join(formats.FORMATS)}")
            if fmt not in formats.FORMATS
            else fail(404, "unknown_source", "no configured source for this format")
            if src is None
            else _refuse_unread(request, src)
        )
        return await invite(request, refusal)

    async def _post(self, request: web.Request, fmt: str, src: Source) -> web.Response:
        self.last_request = time.monotonic()
        refusal = _refuse_unread(request, src)
        if refusal is not None:
            return refusal
        try:
            async with _timeout(self.body_timeout):
                body = await read_capped(request, src.max_body_bytes)
        except asyncio.TimeoutError:  # a stalled or trickling sender must not hold a slot
            # (aiohttp then reads what is left for at most its 10 s lingering time)
            return fail(408, "timeout", f"the body did not arrive within {self.body_timeout:g} s")
        except (web.RequestPayloadError, BadHttpMessage) as exc:  # e.g. gzip that is not
            return fail(400, "bad_body", f"the body cannot be read: {last_line(exc)}")
        if body is None:
            return fail(413, "too_large", f"at most {src.max_body_bytes} bytes")
        try:
            auth.verify(
                src.auth,
                src.secret,
                request.headers,
                body,
                request.match_info.get("token"),
                src.header,
                src.username,
                # A repeated webhook-id is refused only when nothing durable would catch it: an
                # async repeat is a sender's retry and gets the first job (idempotency below).
                self.replay if "wait" in request.query else None,
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
            # One deadline for the whole request, the alerts enriched side by side.
            try:
                out = await asyncio.gather(
                    *(self.enrich_alert(fmt, d, seconds, output) for d in docs)
                )
            except CredentialsRejected as exc:  # our configuration, not the sender's alert
                log.error("VirusTotal rejected the API key: %s", exc.code)
                return fail(503, "credentials_rejected", CREDENTIALS_MESSAGE)
            return web.json_response(out[0] if len(out) == 1 else {"alerts": out})
        idem = (
            request.headers.get("webhook-id")
            or formats.batch_key(fmt, docs)
            or "sha256:" + hashlib.sha256(body).hexdigest()
        )
        jid, new = self.outbox.accept(src.name, fmt, body, f"{src.name}/{idem}")
        if new:
            self.wake.set()
        token = self.job_token(jid)
        return web.json_response(
            {"job": jid, "status": f"/v1/jobs/{jid}?token={token}", "token": token,
             "duplicate": not new},
            status=202 if new else 200,
        )  # fmt: skip

    def job_token(self, jid: str) -> str:
        """The capability to read one job: an HMAC of its id under the outbox's key."""
        digest = hmac.new(self.job_key, jid.encode(), hashlib.sha256).digest()[:24]
        return base64.urlsafe_b64encode(digest).decode()

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
        """A job holds the whole enriched alert: only for its token (from the 202, as ?token=
        or a bearer token) or its source's own credentials (bearer, header and basic)."""
        jid = request.match_info["id"]
        header = request.headers.get("Authorization", "")
        given = request.query.get("token") or (
            header[7:].strip() if header.lower().startswith("bearer ") else ""
        )
        expected = self.job_token(jid).encode()
        if given and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected):
            job = self.outbox.get(jid)
            if job is None:
                return fail(404, "unknown_job", "no such job (finished jobs are kept keep_days)")
            return web.json_response(job)
        job = self.outbox.get(jid)
        src = self.cfg.sources.get(job["source"]) if job else None
        if job and src and src.auth in ("bearer", "header", "basic"):
            try:
                auth.verify(src.auth, src.secret, request.headers, b"", None, src.header,
                            src.username)  # fmt: skip
                return web.json_response(job)
            except auth.AuthError:
                pass
        return fail(
            401,
            "unauthorized",
            "pass the job's token from the 202 (?token= or Authorization: Bearer) or the "
            "source's credentials",
            {"WWW-Authenticate": 'Bearer realm="vtconnect jobs"'},
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "jobs": self.outbox.counts()})

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.stats.render(
            self.outbox.counts(),
            self.outbox.delivery_counts(),
            self.enricher.cache.stats(),
            self.enricher.governor.status().get("left_today"),
        )
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # -- the worker ----------------------------------------------------------------------------
    def _prune_now_and_then(self) -> None:
        """When idle, at most hourly: finished jobs older than keep_days go."""
        now = time.monotonic()
        if now - self.last_prune < PRUNE_EVERY:
            return
        self.last_prune = now
        gone = self.outbox.prune(time.time() - self.cfg.keep_days * 86400)
        if gone:
            log.info("event=jobs_pruned count=%d keep_days=%g", gone, self.cfg.keep_days)

    async def work(self) -> None:
        self.outbox.requeue_running()  # left running by a crash: do them again
        while not self.stopping.is_set():
            jobs = self.outbox.claim()
            if not jobs:
                self._prune_now_and_then()
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            for job in jobs:
                if self.stopping.is_set():
                    break  # claimed but not started: re-queued at shutdown
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
                except CredentialsRejected as exc:
                    # Every job would fail alike: keep them all queued, try again in a while.
                    log.error("VirusTotal rejected the API key (%s); jobs stay queued", exc.code)
                    self.outbox.requeue_running()
                    try:
                        await asyncio.wait_for(self.stopping.wait(), CREDENTIALS_RETRY)
                    except asyncio.TimeoutError:
                        pass
                    break
                except TRANSIENT as exc:  # the disk or the database: the job may succeed later
                    tries = self.job_failures[job["id"]] = self.job_failures.get(job["id"], 0) + 1
                    if tries >= JOB_TRIES:  # ... but is not retried forever
                        log.exception("job %s failed %d times; giving up", job["id"], tries)
                        self.outbox.finish(job["id"], "failed", {"error": "internal error"})
                        del self.job_failures[job["id"]]
                    else:  # later, behind the jobs queued after it: never a blocked queue head
                        log.warning("job %s failed (%r); retried later", job["id"], exc)
                        self.outbox.retry_job(job["id"], time.time() + JOB_RETRY * tries)
                except Exception:  # a bug this alert triggers: it fails alike on every try
                    log.exception("job %s failed; marked failed", job["id"])
                    self.outbox.finish(job["id"], "failed", {"error": "internal error"})


def _refuse_unread(request: web.Request, src: Source) -> Optional[web.Response]:
    """The refusals that need no body: its media type and its announced length."""
    ctype = request.content_type.lower()
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        return fail(415, "unsupported_media_type", "send JSON (application/json)")
    if (request.content_length or 0) > src.max_body_bytes:
        return fail(413, "too_large", f"at most {src.max_body_bytes} bytes")
    return None


if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout  # a timer on the running task: no task per request
else:  # pragma: no cover
    from async_timeout import timeout as _timeout  # what aiohttp itself uses before 3.11


async def deliver_loop(receiver: Receiver) -> None:
    """Send due callbacks; failures are retried with backoff, then dead-lettered."""
    sessions = {True: delivery.session(True), False: delivery.session(False)}
    try:
        while True:
            due = receiver.outbox.due_deliveries()
            for job in due:
                try:
                    await _deliver_one(receiver, sessions, job)
                except Exception as exc:  # a bug: one bad job must not stop every callback
                    log.exception("callback for job %s failed unexpectedly", job["id"])
                    src = receiver.cfg.sources.get(job["source"])
                    attempts = job["attempts"] + 1
                    dead = src is None or attempts >= src.max_attempts
                    when = time.time() + (delivery.backoff(src, attempts) if src else 0)
                    receiver.outbox.retry_later(job["id"], attempts, when, repr(exc), dead)
            await asyncio.sleep(0.05 if due else 0.25)
    finally:
        for s in sessions.values():
            await s.close()


async def _deliver_one(
    receiver: Receiver, sessions: Dict[bool, aiohttp.ClientSession], job: Dict[str, Any]
) -> None:
    src = receiver.cfg.sources.get(job["source"])
    attempts = job["attempts"] + 1
    if src is None or not src.callback_url:
        receiver.outbox.retry_later(job["id"], attempts, 0, "no callback", True)
        return
    ok, error = await delivery.deliver(
        sessions[src.allow_private], src, job["id"], (job["result"] or "{}").encode()
    )
    if ok:
        receiver.outbox.delivered(job["id"], attempts)
        return
    dead = attempts >= src.max_attempts
    when = time.time() + delivery.backoff(src, attempts)
    receiver.outbox.retry_later(job["id"], attempts, when, error, dead)
    if dead:
        log.warning("callback for job %s dead-lettered: %s", job["id"], error)


def _source(r: Enrichment) -> str:
    """Who answered: "virustotal", "emulator" (test data), or "" (not looked up)."""
    if r.report is None:
        return ""
    return "emulator" if r.report.emulated else "virustotal"


FILE_KINDS = ("md5", "sha1", "sha256")


def same_files(results: List[Enrichment]) -> List[int]:
    """For each result, the index of the first result that is the same file (by the hashes
    VirusTotal's report lists for it: MD5, SHA-1 and SHA-256 of one file are one file), or its
    own index."""
    first: Dict[str, int] = {}
    out = []
    for i, r in enumerate(results):
        names = {r.normalized} if r.kind in FILE_KINDS and r.normalized else set()
        if r.kind in FILE_KINDS and r.report is not None:
            names |= {h for h in (r.report.md5, r.report.sha1, r.report.sha256) if h}
        known = [first[n] for n in names if n in first]
        out.append(min(known) if known else i)
        for n in names:
            first.setdefault(n, out[-1])
    return out


def block(fmt: str, results: List[Enrichment]) -> Dict[str, Any]:
    """The `enrichment` block added to an alert: every value found, with the canonical value
    looked up (`normalized`); the hashes of one file name each other (`aliases` on the first,
    `same_as` on the others) and count once."""
    items = []
    for r in results:
        d = r.to_dict()
        pending = r.verdict == Verdict.ERROR and r.error == "deadline"
        items.append(
            {
                k: d[k]
                for k in (
                    "value",
                    "normalized",
                    "kind",
                    "verdict",
                    "score",
                    "reason",
                    "malicious",
                    "suspicious",
                    "harmless",
                    "undetected",
                    "link",
                    "threat_label",
                )
            }
            | {"pending": pending, "source": _source(r),
               "evidence": {k: d[k] for k in evidence.FIELDS}}  # fmt: skip
        )
    groups = same_files(results)
    for i, g in enumerate(groups):
        if g != i:
            items[i]["same_as"] = items[g]["value"]
            items[g].setdefault("aliases", []).append(items[i]["value"])
    distinct = [r for i, r in enumerate(results) if groups[i] == i]
    known = [r.verdict for r in results if r.verdict in ORDER]
    overall = min(known, key=ORDER.index).value if known else "none"
    risky = [r for r in distinct if r.is_risky]
    summary = f"{len(risky)} of {len(distinct)} indicators risky" + (
        ": " + ", ".join(f"{r.normalized} {r.verdict.value} ({r.score})" for r in risky[:5])
        if risky
        else ""
    )
    return {
        "format": fmt,
        "verdict": overall,
        "emulator": any(i["source"] == "emulator" for i in items),  # test data, not VirusTotal
        "is_risky": bool(risky),
        "summary": summary,
        "observables": items,
        "indicators": len(distinct),  # a file sent as MD5 and SHA-256 counts once
        "pending": sum(i["pending"] for i in items),
    }


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = fail(exc.status, "http", exc.reason)
    except Exception:  # a bug, never bad input (the tests show bad input stays 4xx)
        log.exception("webhook request failed")
        response = fail(500, "internal", "internal error")
    return await _settled(request, response)


OPENAPI = resources.files(__package__).joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API (shipped as package data)."""
    return web.Response(body=OPENAPI, content_type="application/json")


def build_app(settings: Settings, enricher: Enricher) -> web.Application:
    receiver = Receiver(settings, enricher)
    app = web.Application(middlewares=[errors])
    app[RECEIVER] = receiver
    app.router.add_post("/v1/alerts/{format}", receiver.post_alert, expect_handler=receiver.expect)
    app.router.add_post(
        "/v1/alerts/{format}/{token}", receiver.post_alert, expect_handler=receiver.expect
    )
    app.router.add_get("/v1/jobs/{id}", receiver.get_job)
    app.router.add_get("/healthz", receiver.healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", receiver.metrics)

    async def worker(app: web.Application):  # type: ignore[no-untyped-def]
        tasks = [
            asyncio.ensure_future(receiver.work()),
            asyncio.ensure_future(deliver_loop(receiver)),
        ]
        yield
        # Graceful: the job in hand may finish within the grace period; then everything stops,
        # and what was claimed but not finished goes back to the queue for the next start.
        receiver.stopping.set()
        receiver.wake.set()
        await asyncio.wait(tasks[:1], timeout=receiver.cfg.shutdown_grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        receiver.outbox.requeue_running()
        receiver.outbox.close()
        receiver.extractor.shutdown(wait=False)

    app.cleanup_ctx.append(worker)
    return app


RECEIVER: web.AppKey[Receiver] = web.AppKey("receiver")
