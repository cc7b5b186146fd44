"""A thin client of the hub: sends values to POST /v1/enrich instead of calling VirusTotal.

In the core, so that every client can use it: the CLI's `--remote` and the Splunk app (which
vendors the core, never the hub). The hub's side is connectors/hub.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Protocol

import aiohttp

MAX_DEADLINE = 300.0  # seconds the hub waits at most (connectors.hub.config.MAX_DEADLINE)
REQUEST_SLACK = 30.0  # seconds beyond the asked deadline before the client gives up on the hub


class Remote(Protocol):
    """Where the hub is: connectors.hub.config.Remote, or the Splunk app's [remote]."""

    url: str  # http(s)://host:port, no trailing slash
    token: str  # the client's bearer token


class HubError(Exception):
    """The hub answered with an error (its JSON code and message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({status} {code})")
        self.status, self.code = status, code


class HubUnreachable(Exception):
    """No answer from the hub: refused, reset, a timeout, or not the hub's JSON."""


class HubClient:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.url = remote.url + "/v1/enrich"
        self._session: Optional[aiohttp.ClientSession] = None

    async def enrich(
        self,
        values: List[str],
        kind: str = "auto",
        priority: str = "interactive",
        deadline: Optional[float] = None,
    ) -> List[Dict[str, Any]]:
        """One row per value (the objects `vtconnect lookup --format json` prints)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.remote.token}"}
            )
        wait = min(MAX_DEADLINE, deadline) if deadline else MAX_DEADLINE
        body = {"values": values, "type": kind, "priority": priority, "deadline": wait}
        try:
            async with self._session.post(
                self.url, json=body, timeout=aiohttp.ClientTimeout(total=wait + REQUEST_SLACK)
            ) as response:
                try:
                    doc = await response.json(content_type=None)
                except ValueError:
                    doc = None
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise HubUnreachable(str(exc) or type(exc).__name__) from None
        if status >= 400 and isinstance(doc, dict) and "error" in doc:
            raise HubError(status, str(doc.get("error")), str(doc.get("message", ""))[:500])
        results = doc.get("results") if isinstance(doc, dict) else None
        if status != 200 or not isinstance(results, list) or len(results) != len(values):
            raise HubUnreachable(f"not a hub answer (HTTP {status}) from {self.url}")
        return results

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
