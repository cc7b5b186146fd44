"""Options of one flat feed: from query parameters (`?format=edl&min_confidence=80`) or from a
named definition in the configuration (`[[taxii.feeds]]`, served at /feeds/<name>.txt|.csv)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple

from connectors.core.config import ConfigError

KINDS = ("file", "url", "domain", "ip", "all")
FORMATS = ("plain", "csv", "edl", "checkpoint", "cisco")
VERDICTS = ("malicious", "suspicious", "harmless", "unknown")  # unknown: no indicator_types
EXTENSION = {"plain": "txt", "csv": "csv", "edl": "txt", "checkpoint": "csv", "cisco": "txt"}
ONE_TYPE = {"edl": ("url", "domain", "ip"), "cisco": ("file", "url", "domain", "ip")}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class BadOption(ValueError):
    """An option value that cannot be used (a 400 from the server, a ConfigError at load)."""


@dataclass(frozen=True)
class FeedOptions:
    kind: str = "all"
    format: str = "plain"
    verdicts: Tuple[str, ...] = ("malicious",)  # a suspicious value is no block-list entry
    min_confidence: int = 0
    max_entries: int = 50_000  # PAN-OS's smaller platforms hold 50,000 entries per list
    wildcards: bool = False  # domains also as *.domain (EDL)
    min_prefix_ipv4: int = 16  # shorter networks are left out (never 0.0.0.0/0)
    min_prefix_ipv6: int = 48

    def key(self) -> str:
        """A canonical spelling, part of the feed's cache key and ETag."""
        return repr(dataclasses.astuple(self))


FIELDS = {f.name for f in dataclasses.fields(FeedOptions)}
_BOUNDS = {"min_confidence": (0, 100), "max_entries": (1, 10_000_000),
           "min_prefix_ipv4": (0, 32), "min_prefix_ipv6": (0, 128)}  # fmt: skip


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise BadOption(f"{name} must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadOption(f"{name} must be a whole number") from None
    low, high = _BOUNDS[name]
    if not low <= number <= high:
        raise BadOption(f"{name} must be between {low} and {high}")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise BadOption(f"{name} must be true or false")


def _verdicts(value: Any) -> Tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    verdicts = tuple(dict.fromkeys(str(v).strip().lower() for v in items if str(v).strip()))
    wrong = [v for v in verdicts if v not in VERDICTS]
    if wrong or not verdicts:
        raise BadOption(f"verdicts must be some of {', '.join(VERDICTS)}")
    return verdicts


def apply(base: FeedOptions, values: Mapping[str, Any]) -> FeedOptions:
    """`base` with the options named in `values` (query parameters or a config table)."""
    changes: Dict[str, Any] = {}
    for name, value in values.items():
        if name not in FIELDS:
            raise BadOption(f"unknown feed option {name!r} (one of {', '.join(sorted(FIELDS))})")
        if name == "kind":
            if value not in KINDS:
                raise BadOption(f"kind must be one of {', '.join(KINDS)}")
            changes[name] = value
        elif name == "format":
            if value not in FORMATS:
                raise BadOption(f"format must be one of {', '.join(FORMATS)}")
            changes[name] = value
        elif name == "verdicts":
            changes[name] = _verdicts(value)
        elif name == "wildcards":
            changes[name] = _bool(name, value)
        else:
            changes[name] = _int(name, value)
    options = dataclasses.replace(base, **changes)
    kinds = ONE_TYPE.get(options.format)
    if kinds and options.kind not in kinds:
        raise BadOption(f"a {options.format} list holds one type: kind must be one of "
                        + ", ".join(kinds))  # fmt: skip
    return options


@dataclass(frozen=True)
class NamedFeed:
    name: str
    collection: str
    options: FeedOptions

    @property
    def path(self) -> str:
        return f"{self.name}.{EXTENSION[self.options.format]}"


FEED_KEYS = ("name", "collection", *sorted(FIELDS))


def load_feeds(items: List[Mapping[str, Any]], collections: Tuple[str, ...]) -> List[NamedFeed]:
    """The [[taxii.feeds]] tables; a bad one is a ConfigError naming it."""
    feeds: List[NamedFeed] = []
    for i, item in enumerate(items):
        where = f"taxii.feeds[{i}]"
        name, coll = item.get("name", ""), item.get("collection", "")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}.name must be letters, digits, '-' or '_' (the URL)")
        if name in {f.name for f in feeds}:
            raise ConfigError(f"{where}.name {name!r} is used twice")
        if coll not in collections:
            raise ConfigError(f"{where}.collection must name a [[taxii.collections]] id")
        rest = {k: v for k, v in item.items() if k not in ("name", "collection")}
        try:
            options = apply(FeedOptions(), rest)
        except BadOption as exc:
            raise ConfigError(f"{where}: {exc}") from None
        feeds.append(NamedFeed(name, coll, options))
    return feeds
