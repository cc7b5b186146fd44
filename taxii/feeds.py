"""Flat feeds for firewalls that do not speak TAXII 2.1 (Palo Alto EDL, Check Point, Cisco TID,
Splunk ES < 8.2): GET /feeds/{collection}/{kind}.txt (one value a line) or .csv, served from the
same store and with the same rights as the collection."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import logging
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from aiohttp import web

from connectors.core.lists import Lists

from . import feed_formats as formats
from .feed_options import FeedOptions

log = logging.getLogger(__name__)

PATTERN = re.compile(
    r"^\[(file:hashes\.(?:MD5|'SHA-1'|'SHA-256')|url:value|domain-name:value|ipv4-addr:value"
    r"|ipv6-addr:value) = '((?:[^'\\]|\\.)*)'\]$"
)
KIND_OF = {"url:value": "url", "domain-name:value": "domain", "ipv4-addr:value": "ip",
           "ipv6-addr:value": "ip"}  # fmt: skip
KINDS = ("file", "url", "domain", "ip", "all")
Entry = Tuple[str, str, Dict]


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
    labels = obj.get("labels", [])
    text = ";".join(str(x) for x in labels) if isinstance(labels, list) else ""
    (value + str(obj.get("name", "")) + text).encode("utf-8")  # UnicodeEncodeError: a lone
    # surrogate is left out here, not found while the response is written
    return kind, value, obj


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


EMULATOR_COMMENT = "# vtconnect emulator test data: not VirusTotal, not for enforcement"
EMPTY_COMMENT = "# empty: no entry matches this feed's options"
_VERDICT_OF = {"malicious-activity": "malicious", "anomalous-activity": "suspicious",
               "benign": "harmless"}  # fmt: skip


def verdict_of(obj: Dict) -> str:
    """Our verdict behind an indicator (its indicator_types); "unknown" for a peer's without."""
    types = obj.get("indicator_types")
    for t in types if isinstance(types, list) else []:
        if t in _VERDICT_OF:
            return _VERDICT_OF[t]
    return "unknown"


def _confidence(obj: Dict) -> int:
    c = obj.get("confidence")
    return c if isinstance(c, int) and not isinstance(c, bool) else 0


def select(
    items: List[Entry], options: FeedOptions, lists: Optional[Lists] = None
) -> Tuple[List[Entry], int]:
    """The entries a feed may carry, newest and most confident kept under the cap; and how
    many passed the rules before the cap."""
    kept: List[Entry] = []
    ignored = _ignored_networks(lists)
    for kind, value, obj in items:
        if verdict_of(obj) not in options.verdicts or _confidence(obj) < options.min_confidence:
            continue
        value = _safe(kind, value, options, lists, ignored)
        if value:
            kept.append((kind, value, obj))
    total = len(kept)
    if total > options.max_entries:
        order = sorted(range(total), key=lambda i: (_confidence(kept[i][2]),
                       str(kept[i][2].get("modified", "")), i), reverse=True)  # fmt: skip
        chosen = sorted(order[: options.max_entries])
        kept = [kept[i] for i in chosen]
    return kept, total


def _safe(kind: str, value: str, options: FeedOptions, lists: Optional[Lists],
          ignored: List[formats.Network]) -> str:  # fmt: skip
    """The value as the feed may carry it, or "" when a rule keeps it out."""
    if kind == "ip":
        try:
            net = formats.network(value)
        except ValueError:
            return ""
        if formats.wide(net, options) or any(net.overlaps(n) for n in ignored):
            return ""  # an allow-listed address inside a listed network keeps the network out
        value = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        return value if formats.accepts(kind, value, options) else ""
    if kind in ("domain", "url"):
        host = value.lower() if kind == "domain" else formats.url_host(value)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if "*" in host or formats.is_public_suffix(host):
                return ""
            if kind == "domain" and options.wildcards and _covers_ignored(host, lists):
                return ""  # *.domain would block an allow-listed name under it
    if lists and _allowed(lists, kind, value):
        return ""
    return value if formats.accepts(kind, value, options) else ""


def _allowed(lists: Lists, kind: str, value: str) -> bool:
    """On the ignore or force_harmless list: never on a block list."""
    rule = lists.match_value(kind if kind in ("url", "domain") else "auto", value)
    return rule is not None and rule.list in ("ignore", "force_harmless")


def _ignored_networks(lists: Optional[Lists]) -> List[formats.Network]:
    out: List[formats.Network] = []
    if lists:
        for entry in (*lists.settings.ignore, *lists.settings.force_harmless):
            try:
                out.append(formats.network(entry))
            except ValueError:
                continue
    return out


def _covers_ignored(domain: str, lists: Optional[Lists]) -> bool:
    if not lists:
        return False
    names = (*lists.settings.ignore, *lists.settings.force_harmless)
    return any(n.strip().lstrip("*").lstrip(".").lower().endswith("." + domain) for n in names)


def lines(items: List[Entry], options: FeedOptions, lists: Optional[Lists] = None) -> List[str]:
    """The feed's lines: entries as the format wants them, with comment lines saying when the
    list is emulator data, capped or empty."""
    kept, total = select(items, options, lists)
    body = formats.LINES[options.format](kept, options)
    head: List[str] = []
    if any(obj.get("x_vtconnect_source") == "emulator" for _, _, obj in kept):
        head.append(EMULATOR_COMMENT)
    if total > len(kept):
        head.append(f"# capped: {len(kept)} of {total} entries kept (most confident, newest)")
    headers = 1 if options.format in ("csv", "checkpoint") else 0  # column names
    if len(body) <= headers:
        head.append(EMPTY_COMMENT)
    return [*head, *body]


def render(items: List[Entry], ext: str, options: Optional[FeedOptions] = None,
           lists: Optional[Lists] = None) -> web.Response:  # fmt: skip
    options = options or FeedOptions(format="plain" if ext == "txt" else "csv")
    text = "\n".join(lines(items, options, lists)) + "\n"
    return web.Response(text=text, content_type=formats.CONTENT_TYPE[options.format])


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
