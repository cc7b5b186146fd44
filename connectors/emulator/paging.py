"""VirusTotal's cursor paging, in the shape vt-py's Iterator consumes: `data` is a list,
`meta.cursor` is present while more items follow, `links.next` repeats it as a URL."""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, Sequence, Tuple

from aiohttp import web

from .responses import EMULATOR_META

DEFAULT_LIMIT = 10
MAX_LIMIT = 40


class BadPage(ValueError):
    pass


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        offset = int(raw[1:]) if raw.startswith("o") else -1
    except (ValueError, UnicodeDecodeError):
        offset = -1
    if offset < 0:
        raise BadPage(f"invalid cursor {cursor!r}")
    return offset


def window(query: Dict[str, str]) -> Tuple[int, int]:
    """(limit, offset) from `limit` and `cursor`; limits above 40 are capped like VirusTotal."""
    try:
        limit = int(query.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        raise BadPage("limit must be a number") from None
    if limit < 1:
        raise BadPage("limit must be positive")
    cursor = query.get("cursor")
    return min(limit, MAX_LIMIT), decode_cursor(cursor) if cursor else 0


def page(
    request: web.Request, items: Sequence[Any], render: Callable[[Any], Any], **meta: Any
) -> web.Response:
    limit, offset = window(dict(request.query))
    chunk = items[offset : offset + limit]
    body: Dict[str, Any] = {
        "data": [render(x) for x in chunk],
        "meta": {**EMULATOR_META, "count": len(items), **meta},
        "links": {"self": str(request.url)},
    }
    if offset + limit < len(items):
        cursor = encode_cursor(offset + limit)
        body["meta"]["cursor"] = cursor
        body["links"]["next"] = str(request.url.update_query(cursor=cursor, limit=limit))
    return web.json_response(body)
