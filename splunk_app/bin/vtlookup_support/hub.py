"""| vtlookup through a vtconnect hub ([remote] url in vtlookup.conf): the values go to the
hub's POST /v1/enrich (connectors.core.remote) instead of VirusTotal, so every search head of a
cluster, or a Splunk Cloud stack, shares the hub's budget, cache and verdict log, and what a
search finds reaches the hub's TAXII feed.

The client token is a secret: storage/passwords (realm vtconnect, user remote_token), read
through the app's credential endpoint like the API key. A hub that cannot be reached, or that
refuses the token, gives every value vt_verdict=error (the command warns once); the search goes
on, and the rest of it does not ask that hub again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from connectors.core.verdict import Enrichment, Verdict
from vtlookup_support.fields import HUB_ROW as ROW  # fields.render reads the row from there
from vtlookup_support.settings import HUB_USER as TOKEN_USER  # storage/passwords user name

SECTION = "remote"
MAX_VALUE_CHARS = 8192  # the hub refuses a request holding a longer value (connectors/hub)
VALUES_PER_REQUEST = 2000  # below the hub's 10,000
BODY_BYTES = 4 * 1024 * 1024  # per request, below the hub's 8 MiB
PRIORITY = "interactive"  # a search waits for its answer; the hub caps it at the client's own


def url_problem(url: str) -> Optional[str]:
    """Why [remote] url is not a hub URL, or None (empty means no hub)."""
    text = url.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"[remote] url is not a URL ({exc}): {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"[remote] url must be http(s)://host[:port] of a vtconnect hub, not {url!r}"
    if parts.username is not None or parts.password is not None:
        return "[remote] url must not hold credentials: the token goes in the Remote hub tab"
    if parts.query or parts.fragment or (port is not None and not 0 < port < 65536):
        return f"[remote] url must be http(s)://host[:port] of a vtconnect hub, not {url!r}"
    return None


@dataclass(frozen=True)
class Remote:
    url: str
    token: str = field(repr=False)


def configured(conf: Dict[str, Dict[str, str]], secrets: Dict[str, str]) -> Optional[Remote]:
    """The hub vtlookup.conf names, or None; ValueError when the URL or token is missing or
    wrong."""
    url = (conf.get(SECTION, {}).get("url") or "").strip()
    if not url:
        return None
    problem = url_problem(url)
    if problem:
        raise ValueError(problem)
    token = (secrets.get(TOKEN_USER) or "").strip()
    if not token:
        raise ValueError(
            "[remote] url is set but no hub token is stored: set it in the configuration "
            f"page's Remote hub tab (storage/passwords user {TOKEN_USER})"
        )
    return Remote(url.rstrip("/"), token)


def enrichment(value: str, row: Dict[str, Any]) -> Enrichment:
    """One of the hub's answer rows (connectors.core.records: the objects `vtconnect lookup
    --format json` prints) as an Enrichment without a report; fields.render takes the report's
    fields from the row."""
    try:
        verdict = Verdict(row.get("verdict"))
    except ValueError:
        return failed(value, f"the hub answered an unknown verdict {row.get('verdict')!r}")
    score = row.get("score")
    return Enrichment(
        value=value,
        kind=str(row.get("kind") or ""),
        verdict=verdict,
        score=score if isinstance(score, int) and not isinstance(score, bool) else 0,
        reason=str(row.get("reason") or ""),
        normalized=str(row.get("normalized") or ""),
        vt_id=str(row.get("vt_id") or ""),
        link=str(row.get("link") or ""),
        cached=row.get("cached") is True,
        stale=row.get("stale") is True,
        error=str(row.get("error") or ""),
        extra={ROW: row},
    )


def _too_long(value: str) -> Enrichment:
    from connectors.core.observable import InvalidObservable, parse

    try:
        parse(value)
    except InvalidObservable as exc:
        return Enrichment(value, "", Verdict.SKIPPED, reason=f"not an indicator: {exc}")
    return failed(value, f"longer than the hub takes ({MAX_VALUE_CHARS} characters)")


def failed(value: str, reason: str) -> Enrichment:
    return Enrichment(value, "", Verdict.ERROR, reason=reason, error="hub")


class HubLookups:
    """The search's way to the hub: enrich() never raises."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.down = ""  # why the hub is not asked any more in this search

    def enrich(
        self, values: List[str], kind: Optional[str], deadline: Optional[float]
    ) -> List[Enrichment]:
        """One Enrichment per value, in order. `deadline`: seconds left for the search."""
        out: Dict[int, Enrichment] = {}
        ask: List[int] = []
        for i, v in enumerate(values):
            if len(v) > MAX_VALUE_CHARS:  # the hub refuses the request: answered as it would
                out[i] = _too_long(v)
            else:
                ask.append(i)
        if ask and not self.down:
            try:
                rows = asyncio.run(self._ask([values[i] for i in ask], kind, deadline))
            except Exception as exc:  # never break the search
                self.down = _why(self.remote.url, exc)
            else:
                for i, row in zip(ask, rows):
                    out[i] = (
                        enrichment(values[i], row)
                        if isinstance(row, dict)
                        else failed(values[i], "the hub answered a row that is not an object")
                    )
        for i in ask:
            if i not in out:
                out[i] = failed(values[i], self.down)
        return [out[i] for i in range(len(values))]

    async def _ask(
        self, values: List[str], kind: Optional[str], deadline: Optional[float]
    ) -> List[Any]:
        from connectors.core.remote import HubClient

        client = HubClient(self.remote)
        loop = asyncio.get_running_loop()
        end = None if deadline is None else loop.time() + deadline
        rows: List[Any] = []
        try:
            for batch in _batches(values):
                left = None if end is None else max(0.001, end - loop.time())
                rows += await client.enrich(batch, kind or "auto", PRIORITY, left)
        finally:
            await client.aclose()
        return rows


def _batches(values: List[str]) -> List[List[str]]:
    out: List[List[str]] = []
    batch: List[str] = []
    size = 0
    for v in values:
        cost = len(json.dumps(v, ensure_ascii=False).encode("utf-8")) + 1
        if batch and (len(batch) >= VALUES_PER_REQUEST or size + cost > BODY_BYTES):
            out.append(batch)
            batch, size = [], 0
        batch.append(v)
        size += cost
    if batch:
        out.append(batch)
    return out


def _why(url: str, exc: BaseException) -> str:
    from connectors.core.remote import HubError, HubUnreachable

    if isinstance(exc, HubError):
        if exc.status == 401:
            return f"the hub at {url} rejected the token ({exc.code})"
        return f"the hub at {url} refused the request: {exc}"
    if isinstance(exc, HubUnreachable):
        return f"cannot reach the hub at {url}: {exc}"
    return f"asking the hub at {url} failed: {type(exc).__name__}: {exc}"
