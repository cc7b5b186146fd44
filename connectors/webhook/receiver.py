"""The alert receiver's HTTP side: POST /v1/alerts/{format}, synchronous (?wait=SECONDS, the
alerts enriched in the request) or durable asynchronous (202 + a job in the outbox, enriched by
worker.py), GET /v1/jobs/{id}, /healthz and /metrics. It also holds what the worker and the
callback loop share: the configuration, the outbox and the wake-up events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.core.config import Settings
from connectors.core.enricher import Enricher
from connectors.core.gateway import CredentialsRejected
from connectors.core.quota import Priority
from connectors.part_metrics import CONTENT_TYPE
from connectors.request_bodies import invite, last_line, read_capped

from . import auth, formats, payload, shapes
from .block import block
from .config import Source, WebhookConfig, load
from .errors import fail
from .metrics import Metrics
from .outbox import outbox_for

log = logging.getLogger(__name__)
JSON_TYPES = ("application/json", "application/x-ndjson", "text/plain", "application/jsonl")
BODY_TIMEOUT = 30.0  # seconds a request body may take to arrive
CREDENTIALS_MESSAGE = (
    "VirusTotal rejected the API key; alerts sent without ?wait are kept and enriched once the "
    "key is fixed"
)


class Receiver:
    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        self.cfg: WebhookConfig = load(settings.raw)
        self.enricher = enricher
        self.outbox = outbox_for(settings, self.cfg)
        self.replay = auth.ReplayGuard()
        self.buckets: Dict[str, List[float]] = {}
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()  # shutdown: finish the job in hand, claim no more
        self.last_request = 0.0  # monotonic time of the last alert request (the worker yields)
        self.body_timeout = BODY_TIMEOUT
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
        body = self.stats.render(self.outbox.counts(), self.outbox.delivery_counts(), self.enricher)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


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
