"""A firewall polling a flat feed: a full answer (rendered) against a conditional one (304 from
the collection's state). Prints one JSON object on its last line.

    .venv/bin/python bench/feeds.py [indicators]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # before bench/taxii.py

from aiohttp import web  # noqa: E402

from connectors.core import config, stix  # noqa: E402
from connectors.core.verdict import Enrichment, Verdict  # noqa: E402
from taxii.server import STORE, build_app  # noqa: E402

COLL = str(uuid.UUID(int=0x2A1B0C9D8E7F4A5B9C8D7E6F5A4B3C2D, version=4))


def serve(app: web.Application) -> str:
    loop, ready, box = asyncio.new_event_loop(), threading.Event(), {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        box["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return box["url"]


def get(url: str, headers: Dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def timed(url: str, headers: Dict[str, str], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        get(url, headers)
    return (time.perf_counter() - start) / n


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    tmp = tempfile.mkdtemp()
    doc = {"taxii": {"store": f"{tmp}/taxii.db", "collections": [
        {"id": COLL, "title": "Feed", "public": True}]}}  # fmt: skip
    app = build_app(config.from_mapping(doc, env={}), None)
    now = time.time()
    objs = [stix.indicator(Enrichment(value=f"h{i}.example.com", kind="domain",
                                      verdict=Verdict.MALICIOUS, score=90, reason="bench",
                                      normalized=f"h{i}.example.com"), now)
            for i in range(count)]  # fmt: skip
    app[STORE].add(COLL, objs)
    url = serve(app) + "/feeds/" + COLL + "/domain.txt?format=edl&max_entries=1000000"
    etag = urllib.request.urlopen(url).headers["ETag"]
    full = timed(url, {}, 5)
    cond = timed(url, {"If-None-Match": etag}, 50)
    assert get(url, {"If-None-Match": etag}) == 304
    print(json.dumps({"indicators": count, "full_ms": round(full * 1000, 2),
                      "not_modified_ms": round(cond * 1000, 2),
                      "ratio": round(full / cond, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
