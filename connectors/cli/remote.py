"""`vtconnect lookup` through a hub (`--remote URL`, [remote]): the values go to its
POST /v1/enrich in batches; rows stream out as each batch comes back, a Ctrl-C keeps (and
prints) what was already answered, as a direct lookup does."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Dict, List, Optional

import click

from ..core.remote import HubClient, HubError, HubUnreachable
from ..hub.config import Remote
from . import render

BATCH = 200  # values per request: rows stream out a batch at a time
EXIT_FAILED, EXIT_USAGE, EXIT_CREDENTIALS, EXIT_INTERRUPTED = 1, 2, 3, 130


class RemoteRun:
    def __init__(self, client: HubClient, items: List[str], kind: str, priority: str,
                 deadline: Optional[float], writer: render.RowWriter) -> None:  # fmt: skip
        self.client, self.items, self.kind, self.priority = client, items, kind, priority
        self.deadline, self.writer = deadline, writer
        self.results: List[Dict[str, Any]] = []

    async def go(self) -> None:
        loop = asyncio.get_running_loop()
        end = None if self.deadline is None else loop.time() + self.deadline
        try:
            for i in range(0, len(self.items), BATCH):
                left = None if end is None else max(0.001, end - loop.time())
                out = await self.client.enrich(
                    self.items[i : i + BATCH], self.kind, self.priority, left
                )
                self.results += out
                self.writer.write_rows(out)
        finally:
            await self.client.aclose()


def remote_lookup(remote: Remote, items: List[str], kind: str, priority: str,
                  deadline: Optional[float], writer: render.RowWriter) -> None:  # fmt: skip
    from .context import MAX_LINE

    items = [v if len(v) <= MAX_LINE else v[:64] + "…(truncated)" for v in items]
    run = RemoteRun(HubClient(remote), items, kind, priority, deadline, writer)
    code = 0
    try:
        asyncio.run(run.go())
    except KeyboardInterrupt:
        writer.close()
        click.echo(f"interrupted: {writer.count} of {len(items)} values done", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except HubUnreachable as exc:
        click.echo(f"error: cannot reach the hub at {remote.url}: {exc}", err=True)
        code = EXIT_FAILED
    except HubError as exc:
        if exc.status == 401:
            click.echo(f"error: the hub at {remote.url} rejected the token: {exc}", err=True)
            code = EXIT_CREDENTIALS
        else:
            click.echo(f"error: the hub at {remote.url} refused the request: {exc}", err=True)
            code = EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED
    writer.close()
    if code:
        sys.exit(code)
    if any(r.get("verdict") == "error" for r in run.results):
        sys.exit(EXIT_FAILED)
