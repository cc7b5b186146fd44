"""Stateless keyset pagination: a `next` token is the (date_added, id) of the last object on the
page, so it stays valid across restarts and across several server processes, and deep pages
cost what the first one costs (the store's index serves `(date_added, id) > (?, ?)`)."""

from __future__ import annotations

import base64
import time
from typing import Any, Dict, List, Tuple

MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z: what fits SQLite and RFC 3339


class BadToken(ValueError):
    pass


def us_to_rfc3339(us: int) -> str:
    secs, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


def encode_next(date_added: int, oid: str) -> str:
    return base64.urlsafe_b64encode(f"{date_added}|{oid}".encode()).decode().rstrip("=")


def decode_next(token: str) -> Tuple[int, str]:
    """The keyset position in a token; anything this server did not issue is a BadToken
    (never an OverflowError from SQLite, never a 500)."""
    try:
        if len(token) > 512:
            raise ValueError
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, oid = raw.split("|", 1)
        value = int(stamp)
        if not 0 <= value <= MAX_US or not oid:
            raise ValueError
        return value, oid
    except (ValueError, UnicodeDecodeError):
        raise BadToken("next is not a token this server issued") from None


def date_headers(rows: List[Dict[str, Any]]) -> Dict[str, str]:
    """X-TAXII-Date-Added-First/Last for the rows of a page (absent on an empty page)."""
    if not rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": us_to_rfc3339(rows[0]["date_added"]),
        "X-TAXII-Date-Added-Last": us_to_rfc3339(rows[-1]["date_added"]),
    }


def envelope(more: bool, next_token: str, items: List[Any], key: str) -> Dict[str, Any]:
    """A TAXII envelope; `more` is never true without a `next` (taxii2-client would loop)."""
    more = more and bool(next_token)
    body: Dict[str, Any] = {"more": more}
    if more:
        body["next"] = next_token
    if items:
        body[key] = items
    return body
