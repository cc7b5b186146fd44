"""Query parameters of the TAXII 2.1 object endpoints: added_after, limit (capped), next and the
match[...] filters, checked before anything touches the store (a bad one is a 400, never a 500).
Unknown match[...] filters are refused rather than ignored: ignoring one would hand a consumer
objects it asked to exclude. Other unknown parameters (cache busters) are ignored."""

from __future__ import annotations

import calendar
import functools
import re
from typing import Any, Dict, List, Mapping, Sequence

from .errors import TaxiiError
from .pagination import MAX_US, us_to_rfc3339

# ASCII digits only (\d also matches other scripts' digits) and \Z: "$" would let a trailing
# newline through.
TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z\Z", re.ASCII)
LIMIT_RE = re.compile(r"^[0-9]{1,18}\Z")  # more digits than that cannot be a page size
MAX_VALUES = 100  # per match[...] filter: SQLite bounds the variables in one statement
ID_RE = re.compile(r"^[a-z0-9-]{1,250}--[0-9a-fA-F-]{36}\Z")
TYPE_RE = re.compile(r"^[a-z0-9-]{1,250}\Z")
OBJECTS = ("match[id]", "match[type]", "match[version]", "match[spec_version]")
OBJECT = ("match[version]", "match[spec_version]")
VERSIONS = ("match[spec_version]",)


def timestamp_us(value: str, name: str) -> int:
    """An RFC 3339 UTC timestamp as integer microseconds."""
    m = TS_RE.match(value)
    if not m:
        raise TaxiiError(400, f"{name} must be an RFC 3339 UTC timestamp like 2026-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(max(year, 1), month)[1]
            and hour < 24 and minute < 60 and second < 61 and year >= 1970):  # fmt: skip
        raise TaxiiError(400, f"{name} is not a valid date")
    secs = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    frac = (m.group(7) or ".")[1:]
    return min(secs * 1_000_000 + int((frac + "000000")[:6]), MAX_US)


def _values(query: Mapping[str, str], name: str) -> List[str]:
    values = [v.strip() for part in query.getall(name, []) for v in part.split(",")]  # type: ignore[attr-defined]
    values = [v for v in values if v]
    if len(values) > MAX_VALUES:
        raise TaxiiError(400, f"{name} takes at most {MAX_VALUES} values")
    return values


def parse(
    query: Mapping[str, str],
    *,
    page_size: int,
    max_page_size: int,
    allowed: Sequence[str] = OBJECTS,
    paged: bool = True,
) -> Dict[str, Any]:
    """Keyword arguments for Store.query from a request's query string."""
    for key in query:
        if key.startswith("match[") and key not in allowed:
            raise TaxiiError(400, f"unsupported filter {key[:60]} on this endpoint")
    out: Dict[str, Any] = {}
    if paged:
        out["limit"] = page_size
        if "limit" in query:
            raw = query["limit"].strip()
            # str.isdigit() admits "²", which int() refuses; int() refuses 5,000 digits.
            if not LIMIT_RE.match(raw) or int(raw) < 1:
                raise TaxiiError(400, "limit must be a positive integer")
            out["limit"] = min(int(raw), max_page_size)
        if "added_after" in query:
            out["added_after"] = timestamp_us(query["added_after"].strip(), "added_after")
        if query.get("next"):
            out["next_token"] = query["next"].strip()
    ids, types = _values(query, "match[id]"), _values(query, "match[type]")
    for v in ids:
        if not ID_RE.match(v):
            raise TaxiiError(400, f"match[id]: {v[:80]!r} is not a STIX identifier")
    for v in types:
        if not TYPE_RE.match(v):
            raise TaxiiError(400, f"match[type]: {v[:80]!r} is not a STIX type")
    out["ids"], out["types"] = ids, types
    out["spec_versions"] = _values(query, "match[spec_version]")
    for v in out["spec_versions"]:
        if not re.match(r"^[0-9]\.[0-9]\Z", v):
            raise TaxiiError(400, f"match[spec_version]: {v[:20]!r} is not a version like 2.1")
    versions: List[str] = []
    for v in _values(query, "match[version]") or ["last"]:
        if v in ("first", "last", "all"):
            versions.append(v)
        else:
            versions.append(us_to_rfc3339(timestamp_us(v, "match[version]")))
    out["versions"] = list(dict.fromkeys(versions))
    return out


@functools.lru_cache(maxsize=4096)  # a batch's objects mostly share a few timestamps
def canonical(value: str) -> str:
    """One spelling per instant (microseconds), as the store keeps `modified`: producers write
    ...T10:00:00Z or ...T10:00:00.000Z for one version, and fixed-width text sorts by time."""
    try:
        return us_to_rfc3339(timestamp_us(value, "timestamp"))
    except TaxiiError:
        return value
