"""Conditional GETs for flat feeds: `ETag` and `Last-Modified` on every answer, `304 Not
Modified` for If-None-Match / If-Modified-Since, so a firewall polling every minute costs one
small query (count and newest date_added of the collection's indicators), not a rendering.

The ETag is a hash of the body, so it agrees across replicas and restarts; each process keeps
the last ETag per feed with the collection state it was rendered from and the first moment an
entry in it expires (an expiry changes the list without changing the store)."""

from __future__ import annotations

import asyncio
import datetime as _dt
import email.utils
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from aiohttp import web

from connectors.core.lists import Lists

from . import feed_formats as formats
from . import feeds
from .feed_options import FeedOptions

CACHED_FEEDS = 256  # feeds (collection + options) whose validators are kept per process


@dataclass
class Validators:
    state: Tuple[int, int]
    etag: str
    last_modified: float  # seconds
    not_after: float  # the first expiry among its entries (seconds)


class FeedCache:
    def __init__(self, size: int = CACHED_FEEDS) -> None:
        self.size = size
        self._items: OrderedDict[str, Validators] = OrderedDict()
        self.renders = 0  # feeds rendered (tests read it: a 304 renders nothing)

    def get(self, key: str) -> Optional[Validators]:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, value: Validators) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _seconds(stamp: Any) -> float:
    try:
        return _dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except (ValueError, TypeError):
        return float("inf")


def _not_modified(request: web.Request, v: Validators) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:  # RFC 9110 13.2.2: If-None-Match decides when present
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        return "*" in tags or v.etag in tags
    ims = request.headers.get("If-Modified-Since")
    if ims:
        try:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(v.last_modified) <= since
    return False


def _headers(v: Validators) -> dict:
    return {"ETag": v.etag, "Cache-Control": "no-cache",
            "Last-Modified": email.utils.formatdate(v.last_modified, usegmt=True)}  # fmt: skip


async def respond(request: web.Request, store: Any, collection: str, options: FeedOptions,
                  lists: Optional[Lists], cache: FeedCache) -> web.Response:  # fmt: skip
    state = await asyncio.to_thread(store.feed_state, collection)
    key = f"{collection} {options.key()}"
    now = time.time()
    known = cache.get(key)
    fresh_known = known is not None and known.state == state and now < known.not_after
    if known is not None and fresh_known and _not_modified(request, known):
        return web.Response(status=304, headers=_headers(known))
    cache.renders += 1
    items = await asyncio.to_thread(feeds.collect, store, collection, options.kind)
    text = "\n".join(feeds.lines(items, options, lists)) + "\n"
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    modified = state[1] / 1e6 if state[1] else now
    if known is not None and known.etag == etag:
        modified = known.last_modified
    elif known is not None and int(modified) <= int(known.last_modified):
        # Changed within the same second (HTTP dates have no fraction), or by a deletion or
        # an expiry that did not move the store's newest date: a later date all the same.
        modified = max(now, int(known.last_modified) + 1)
    expiry = min((_seconds(obj.get("valid_until")) for _, _, obj in items), default=float("inf"))
    fresh = Validators(state, etag, modified, expiry)
    cache.put(key, fresh)
    if _not_modified(request, fresh):
        return web.Response(status=304, headers=_headers(fresh))
    return web.Response(text=text, content_type=formats.CONTENT_TYPE[options.format],
                        charset="utf-8", headers=_headers(fresh))  # fmt: skip
