"""The status page: `/status` on every `vtconnect serve` part, read-only and authenticated.

Quota used against the budget (today and this minute, with a chart of the day so far), cache hit
rate, the newest risky verdicts, webhook jobs by state and dead letters, TAXII collections with
their object counts and last addition. A static page and script (no build toolchain) fill
themselves from `/status.json`; every value is set as text, never as markup (verdict-log values
come from alerts and feeds: hostile until shown otherwise). Composition root, like serve.py: it
reads every part's store through that part's public API.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from aiohttp import web

from .core.config import ConfigError, Settings, check_known
from .core.enricher import Enricher

STATIC = Path(__file__).with_name("status_static")
RISKY = ("malicious", "suspicious")
SAMPLE_SECONDS = 60.0
HISTORY = 24 * 60  # one sample a minute: the whole day fits
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def load_users(raw: Mapping[str, Any]) -> Optional[Tuple[Dict[str, str], Dict[str, str]]]:
    """([status] users: name -> password hash, tokens: sha256 -> name), or None when the page
    is not configured. Never anonymous: a [status] without credentials is an error."""
    section = raw.get("status")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("[status] must be a table")
    check_known(section, ("users", "tokens"), "status")
    users: Dict[str, str] = {}
    tokens: Dict[str, str] = {}
    for key, want in (("users", ("name", "password_hash")), ("tokens", ("sha256", "user"))):
        items = section.get(key, [])
        if not isinstance(items, list):
            raise ConfigError(f"status.{key} must be a list of tables ([[status.{key}]])")
        for i, item in enumerate(items):
            where = f"status.{key}[{i}]"
            if not isinstance(item, Mapping):
                raise ConfigError(f"{where} must be a table")
            check_known(item, want, where)
            a, b = (item.get(k, "") for k in want)
            if not (isinstance(a, str) and isinstance(b, str) and a and b):
                raise ConfigError(f"{where} needs {want[0]} and {want[1]}")
            if key == "users":
                if not b.startswith("pbkdf2_sha256$"):
                    raise ConfigError(f"{where}.password_hash: from `vtconnect taxii passwd`")
                users[a] = b
            else:
                if len(a) != 64:
                    raise ConfigError(f"{where}.sha256 must be the hex SHA-256 of the token")
                tokens[a.lower()] = b
    if not users and not tokens:
        raise ConfigError("[status] needs at least one [[status.users]] or [[status.tokens]]")
    return users, tokens


class StatusPage:
    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        from taxii.auth import Authenticator
        from taxii.config import TaxiiConfig

        users, tokens = load_users(settings.raw) or ({}, {})
        # The TAXII server's authenticator: constant-time, decoy hashing for unknown names.
        self.auth = Authenticator(TaxiiConfig(users=users, tokens=tokens))
        self.settings = settings
        self.enricher = enricher
        self.history: Deque[Tuple[float, int]] = collections.deque(maxlen=HISTORY)
        self._open: Dict[str, Any] = {}  # part -> its store, opened on the first look

    def paths(self) -> Dict[str, Any]:
        """Exact paths and their handlers, answered in front of each part's own routing."""
        return {
            "/status": self.page,
            "/status/": self.page,
            "/status.json": self.data,
            "/status/status.js": self.asset,
            "/status/status.css": self.asset,
        }

    async def _check(self, request: web.Request) -> None:
        from taxii.errors import TaxiiError

        try:
            user = await self.auth.user(request.headers.get("Authorization", ""))
        except TaxiiError:
            user = None
        if user is None:
            raise web.HTTPUnauthorized(
                text='{"error": "authentication required"}',
                content_type="application/json",
                headers={"WWW-Authenticate": 'Basic realm="vtconnect status"', **SECURITY_HEADERS},
            )

    async def page(self, request: web.Request) -> web.Response:
        await self._check(request)
        return web.FileResponse(STATIC / "status.html", headers=SECURITY_HEADERS)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        await self._check(request)
        return web.FileResponse(STATIC / request.path.rsplit("/", 1)[1], headers=SECURITY_HEADERS)

    async def data(self, request: web.Request) -> web.Response:
        await self._check(request)
        return web.json_response(self.collect(), headers=SECURITY_HEADERS)

    def sample(self) -> Dict[str, Any]:
        quota = self.enricher.governor.status()
        now = time.time()
        used = quota.get("used_today") or 0
        if self.history and time.gmtime(self.history[-1][0])[:3] != time.gmtime(now)[:3]:
            self.history.clear()  # a new UTC day: the budget was reset
        if not self.history or now - self.history[-1][0] >= SAMPLE_SECONDS:
            self.history.append((now, used))
        return quota

    def collect(self) -> Dict[str, Any]:
        quota = self.sample()
        cache = self.enricher.cache
        stats = cache.stats()
        out: Dict[str, Any] = {
            "generated_at": _iso(time.time()),
            "tier": self.settings.quota.tier,
            "quota": dict(quota, history=[[_iso(t), u] for t, u in self.history]),
            "cache": {k: stats[k] for k in ("entries", "by_verdict", "hit_rate", "hits_today",
                                            "misses_today")},  # fmt: skip
            "risky": [
                {"value": r.value, "kind": r.kind, "verdict": r.verdict, "score": r.score,
                 "connector": r.connector, "at": _iso(r.at), "reason": r.reason}  # fmt: skip
                for r in cache.recent(20, RISKY)
            ],
            "webhook": self._webhook(),
            "taxii": self._taxii(),
        }
        return out

    def _webhook(self) -> Optional[Dict[str, Any]]:
        if "webhook" not in self.settings.raw:
            return None
        outbox = self._opened("outbox", self._open_outbox)
        callbacks = outbox.delivery_counts()
        return {"jobs": outbox.counts(), "callbacks": callbacks,
                "dead_letters": callbacks.get("dead", 0)}  # fmt: skip

    def _taxii(self) -> Optional[List[Dict[str, Any]]]:
        if "taxii" not in self.settings.raw:
            return None
        cfg, store = self._opened("taxii", self._open_taxii)
        summary = store.summary()
        rows = []
        for c in cfg.collections:
            count, last = summary.get(c.id, (0, None))
            rows.append({"id": c.id, "title": c.title, "objects": count,
                         "last_added": _iso(last / 1e6) if last else ""})  # fmt: skip
        return rows

    # The parts' stores are opened on the first look and kept (a page refreshes every 15 s:
    # reopening, on PostgreSQL a new pool each time, was most of an answer's cost).
    def _opened(self, name: str, open_it: Any) -> Any:
        if name not in self._open:
            self._open[name] = open_it()
        return self._open[name]

    def _open_outbox(self) -> Any:
        from .webhook.config import load
        from .webhook.outbox import outbox_for

        return outbox_for(self.settings, load(self.settings.raw))  # [core] database when set

    def _open_taxii(self) -> Any:
        from taxii.config import load
        from taxii.store import store_for

        cfg = load(self.settings.raw)
        return cfg, store_for(self.settings, cfg.store)  # [core] database when set

    def close(self) -> None:
        for opened in self._open.values():
            (opened[1] if isinstance(opened, tuple) else opened).close()
        self._open.clear()

def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
