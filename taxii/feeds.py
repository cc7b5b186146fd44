"""Flat feeds for firewalls that do not speak TAXII 2.1 (Palo Alto EDL, Check Point, Cisco TID,
Splunk ES < 8.2): GET /feeds/{collection}/{kind}.txt (one value a line) or .csv, served from the
same store and with the same rights as the collection."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from aiohttp import web

log = logging.getLogger(__name__)

PATTERN = re.compile(
    r"^\[(file:hashes\.(?:MD5|'SHA-1'|'SHA-256')|url:value|domain-name:value|ipv4-addr:value"
    r"|ipv6-addr:value) = '((?:[^'\\]|\\.)*)'\]$"
)
KIND_OF = {"url:value": "url", "domain-name:value": "domain", "ipv4-addr:value": "ip",
           "ipv6-addr:value": "ip"}  # fmt: skip
KINDS = ("file", "url", "domain", "ip", "all")


def entries(rows: Iterator[Dict], now: str) -> Iterator[Tuple[str, str, Dict]]:
    """(kind, value, indicator) for live, unrevoked single-comparison indicators. One object
    that cannot be served (not valid Unicode, odd types stored by an older version) is left out
    and logged: it never breaks the feed for every firewall."""
    for row in rows:
        try:
            entry = _entry(json.loads(row["body"]), now)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            log.warning("feed: object %s left out: %s", row.get("id"), type(exc).__name__)
            continue
        if entry is not None:
            yield entry


def _entry(obj: Dict, now: str) -> Optional[Tuple[str, str, Dict]]:
    if obj.get("type") != "indicator" or obj.get("revoked"):
        return None
    if obj.get("valid_until", "9999") <= now:
        return None
    m = PATTERN.match(obj.get("pattern", ""))
    if not m:
        return None
    kind = KIND_OF.get(m.group(1), "file")
    value = m.group(2).replace("\\'", "'").replace("\\\\", "\\")
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        return None  # a line break in a value would add lines to a firewall's block list
    "".join(_row(kind, value, obj)).encode("utf-8")  # UnicodeEncodeError: a lone surrogate
    return kind, value, obj


def _row(kind: str, value: str, obj: Dict) -> List[str]:
    """The CSV cells of one entry (the text feed uses the value alone)."""
    labels = obj.get("labels", [])
    row = [value, kind, obj.get("confidence", ""), obj.get("valid_until", ""),
           ";".join(str(x) for x in labels) if isinstance(labels, list) else "",
           obj.get("name", "")]  # fmt: skip
    return [_cell(c) for c in row]


def collect(store: Any, collection: str, kind: str) -> List[Tuple[str, str, Dict]]:
    """Every live indicator of a collection (latest versions), page by page, for one kind."""
    items: List[Tuple[str, str, Dict]] = []
    now, token = now_rfc3339(), None
    while True:
        page = store.query(collection, limit=1000, types=["indicator"], next_token=token)
        items += [e for e in entries(iter(page.objects), now) if kind in ("all", e[0])]
        if not page.more:
            return items
        token = page.next


def render(items: List[Tuple[str, str, Dict]], ext: str) -> web.Response:
    if ext == "txt":
        # EDL: one entry a line; URL entries without the scheme, as PAN-OS expects them.
        lines = [re.sub(r"^[a-z]+://", "", v) if k == "url" else v for k, v, _ in items]
        text = "\n".join(dict.fromkeys(lines)) + ("\n" if lines else "")
        return web.Response(text=text, content_type="text/plain")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["value", "kind", "confidence", "valid_until", "labels", "name"])
    for kind, value, obj in items:
        w.writerow(_row(kind, value, obj))
    return web.Response(text=buf.getvalue(), content_type="text/csv")


def _cell(value: object) -> str:
    """Pulled feeds are someone else's text: a cell a spreadsheet would run as a formula gets a
    leading quote (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
