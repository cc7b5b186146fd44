"""One TOML file configures every part; VT_API_KEY and VT_API_URL override it.

The core only reads the sections it owns ([virustotal], [privacy], [policy], [cache], [quota],
[lists]); servers and sources read their own sections from the same parsed document
(`Settings.raw`).
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from . import relationships
from .weights import (
    DEFAULT_ENGINE_WEIGHTS,
    DEFAULT_TRUSTED_PUBLISHERS,
    DEFAULT_WEAK_NAME_WEIGHT,
    DEFAULT_WEAK_NAMES,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.9/3.10 (Splunk 9.x)
    import tomli as tomllib

DEFAULT_API_URL = "https://www.virustotal.com"
DEFAULT_INTERNAL_SUFFIXES = (".local", ".internal", ".lan", ".corp", ".home.arpa", ".localhost")
# The names connectors give the Enricher (Enricher(connector=...)): the keys [quota.shares] knows.
CONNECTORS = ("cli", "demo", "serve", "splunk", "taxii", "taxii-pull", "webhook")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


# Top-level sections of vtconnect.toml: the core's own, then the ones other parts read from
# `Settings.raw` (each part checks its own keys). Anything else is a typo, not a new feature.
CORE_SECTIONS = ("core", "virustotal", "privacy", "policy", "cache", "quota", "lists")
PART_SECTIONS = ("taxii", "webhook", "status", "api", "remote")
SERVER_SECTION = "server"  # connection limits for every server part (connectors/connections.py)


def check_known(table: Mapping[str, Any], known: Any, where: str) -> None:
    """ConfigError for the first key of `table` not in `known`, with the closest known name.
    `where` is the dotted path of the table ("" for the top level)."""
    known = tuple(known)
    for key in sorted(str(k) for k in table):
        if key in known:
            continue
        name = f"{where}.{key}" if where else key
        kind = "key" if where else "section"
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
        raise ConfigError(f"unknown {kind} {name} ({hint})")


class SecretStr:
    """Holds the API key so that printing, repr() or logging never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "SecretStr('********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class VirusTotalSettings:
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    api_url: str = DEFAULT_API_URL
    agent: str = "vtconnect"
    timeout: float = 20.0  # seconds per request
    max_concurrency: int = 8  # requests in flight per process
    retries: int = 3  # for 5xx, 503 TransientError, 504 DeadlineExceededError
    proxy: Optional[str] = None
    verify_tls: bool = True
    # Asked for in the same GET, only of the kinds that have them (relationships.py): flat names,
    # or "kind:name" from a table per kind.
    relationships: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PrivacySettings:
    internal_suffixes: Tuple[str, ...] = DEFAULT_INTERNAL_SUFFIXES
    # Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not
    # global; tests and the emulator set this so their sample addresses get looked up.
    allow_documentation_ranges: bool = False
    # Free-text extraction skips the domain of e-mail addresses (alice@corp.example.com): an
    # address says who was mailed, not where malware lives. true: extract it too.
    extract_email_domains: bool = False


@dataclass(frozen=True)
class ListsSettings:
    """Entries are values, suffixes (.example.org) or networks (10.0.0.0/8); see core/lists.py."""

    ignore: Tuple[str, ...] = ()  # never looked up, never published: own domains, CDNs, sinkholes
    force_harmless: Tuple[str, ...] = ()  # analyst-confirmed false positives
    force_malicious: Tuple[str, ...] = ()  # analyst-confirmed bad values


@dataclass(frozen=True)
class PolicySettings:
    malicious_min: int = 3  # weighted engines saying malicious
    malicious_percent: float = 3.0  # ... and this share of the engines that gave an answer
    suspicious_min: int = 1
    suspicious_percent: float = 0.0
    min_engines: int = 5  # fewer answering engines than this: at most suspicious
    trusted_engines: Tuple[str, ...] = ()  # any of these saying malicious makes it malicious
    preferred_engines: Tuple[str, ...] = ()  # preferred_min of these saying malicious: malicious
    preferred_min: int = 2
    weak_names: Tuple[str, ...] = DEFAULT_WEAK_NAMES  # heuristic/ML/generic detection names
    weak_name_weight: float = DEFAULT_WEAK_NAME_WEIGHT  # what one such detection counts for
    engine_weights: Tuple[str, ...] = DEFAULT_ENGINE_WEIGHTS  # "engine=weight", default 1
    trusted_publishers: Tuple[str, ...] = DEFAULT_TRUSTED_PUBLISHERS  # verified signers
    use_virustotal_verdicts: bool = True  # GTI assessment, threat severity, known distributors
    use_yara: bool = False  # crowdsourced YARA hits raise to suspicious (many rules are generic)
    use_sigma: bool = True  # critical/high Sigma hits raise to suspicious
    use_ids: bool = True  # high-severity IDS alerts raise to suspicious
    use_sandbox: bool = True  # a sandbox saying malicious raises to suspicious
    use_reputation: bool = True  # community reputation <= -bad_reputation raises to suspicious
    bad_reputation: int = 20
    rescan_after_days: int = 0  # 0: never request a reanalysis

    def __post_init__(self) -> None:
        for item in self.engine_weights:
            name, sep, weight = item.rpartition("=")
            try:
                ok = bool(sep and name.strip()) and float(weight) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(
                    f"policy.engine_weights: {item!r} is not 'engine=weight' (weight >= 0)"
                )


@dataclass(frozen=True)
class CacheSettings:
    path: str = ""  # SQLite file; "" -> <state_dir>/cache.db
    lru_size: int = 50_000
    ttl_malicious: int = 7 * 86400
    ttl_suspicious: int = 2 * 86400
    ttl_harmless: int = 3 * 86400
    ttl_undetected: int = 86400
    ttl_not_found: int = 3600
    log_interval: int = (
        3600  # a cache hit is logged again for the same connector at most this often
    )

    def ttl_for(self, verdict: str) -> int:
        return int(getattr(self, "ttl_" + verdict, 0))


@dataclass(frozen=True)
class QuotaSettings:
    # public: 4/min and 500/day; premium: the two numbers below; unlimited: no local limit
    # (VirusTotal still answers 429 when a contract's real limit is reached, and we back off);
    # auto: public, except against a local emulator, which says which tier it enforces
    tier: str = "auto"
    per_minute: int = 0  # 0: the tier's default
    per_day: int = 0
    path: str = ""  # SQLite file shared by every process on the host; "" -> <state_dir>/quota.db
    # [quota.shares]: part of the daily budget reserved per connector, e.g. (("webhook", 0.4),)
    shares: Tuple[Tuple[str, float], ...] = ()

    def limits(self) -> Tuple[int, int]:
        """(per minute, per day); (0, 0) means no local limit."""
        if self.tier in ("public", "auto"):
            return (self.per_minute or 4, self.per_day or 500)
        if self.tier == "unlimited":
            return (0, 0)
        return (self.per_minute or 1000, self.per_day or 1_000_000)


@dataclass(frozen=True)
class Settings:
    virustotal: VirusTotalSettings = field(default_factory=VirusTotalSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    lists: ListsSettings = field(default_factory=ListsSettings)
    state_dir: str = ""
    # postgresql:// URL shared by replicas; "" -> SQLite files in state_dir (may hold a password)
    database: str = field(default="", repr=False)
    source: str = ""  # the file this came from, for messages
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole document, for other parts

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser() if self.state_dir else default_state_dir()

    @property
    def cache_path(self) -> Path:
        return (
            Path(self.cache.path).expanduser() if self.cache.path else self.state_path / "cache.db"
        )

    @property
    def quota_path(self) -> Path:
        return (
            Path(self.quota.path).expanduser() if self.quota.path else self.state_path / "quota.db"
        )

    def with_(self, **sections: Any) -> Settings:
        return replace(self, **sections)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "vtconnect"


def _section(cls: Any, data: Mapping[str, Any], name: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    check_known(data, known, name)
    values: Dict[str, Any] = {}
    for key, value in data.items():
        default = known[key].default
        if key == "api_key":
            if not isinstance(value, str):
                raise ConfigError(f"{name}.{key} must be a string")
            value = SecretStr(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}.{key} must be a number")
            if value < 0:
                raise ConfigError(f"{name}.{key} must not be negative")
            value = type(default)(value)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name}.{key} must be a list of strings")
            value = tuple(value)
        elif value is not None and not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string")
        values[key] = value
    return cls(**values)


def from_mapping(
    doc: Mapping[str, Any], source: str = "", env: Optional[Mapping[str, str]] = None
) -> Settings:
    env = os.environ if env is None else env
    check_known(doc, CORE_SECTIONS + PART_SECTIONS + (SERVER_SECTION,), "")
    vt_doc = doc.get("virustotal", {})
    rels: Tuple[str, ...] = ()
    if isinstance(vt_doc, Mapping) and "relationships" in vt_doc:
        try:
            rels = relationships.parse(vt_doc["relationships"])
        except relationships.UnknownRelationship as exc:
            raise ConfigError(f"virustotal.relationships: {exc}") from None
        vt_doc = {k: v for k, v in vt_doc.items() if k != "relationships"}
    vt = replace(_section(VirusTotalSettings, vt_doc, "virustotal"), relationships=rels)
    if env.get("VT_API_KEY"):
        vt = replace(vt, api_key=SecretStr(env["VT_API_KEY"].strip()))
    if env.get("VT_API_URL"):
        vt = replace(vt, api_url=env["VT_API_URL"].strip())
    vt = replace(vt, api_url=normalize_api_url(vt.api_url))
    if vt.max_concurrency < 1:
        raise ConfigError("virustotal.max_concurrency must be at least 1")
    quota_doc = doc.get("quota", {})
    shares = _shares(
        quota_doc.get("shares", {}) if isinstance(quota_doc, Mapping) else {}, _api_clients(doc)
    )
    if isinstance(quota_doc, Mapping):
        quota_doc = {k: v for k, v in quota_doc.items() if k != "shares"}
    quota = replace(_section(QuotaSettings, quota_doc, "quota"), shares=shares)
    if quota.tier not in ("auto", "public", "premium", "unlimited"):
        raise ConfigError("quota.tier must be 'auto', 'public', 'premium' or 'unlimited'")
    core = doc.get("core", {})
    if not isinstance(core, Mapping):
        raise ConfigError("[core] must be a table")
    check_known(core, ("database", "state_dir"), "core")
    database = _database_url(env.get("VTCONNECT_DATABASE") or core.get("database", ""))
    privacy = _section(PrivacySettings, doc.get("privacy", {}), "privacy")
    privacy = replace(
        privacy,
        internal_suffixes=tuple(
            "." + s.strip().lower().lstrip(".") for s in privacy.internal_suffixes
        ),
    )
    lists = _section(ListsSettings, doc.get("lists", {}), "lists")
    from .lists import matcher  # here: lists.py imports this module

    matcher(lists)  # a bad entry is a ConfigError now, not at the first lookup
    return Settings(
        virustotal=vt,
        privacy=privacy,
        policy=_section(PolicySettings, doc.get("policy", {}), "policy"),
        cache=_section(CacheSettings, doc.get("cache", {}), "cache"),
        quota=quota,
        lists=lists,
        state_dir=str(core.get("state_dir", "")),
        database=database,
        source=source,
        raw=doc,
    )


def _api_clients(doc: Mapping[str, Any]) -> Dict[str, Any]:
    """The hub's clients ([[api.clients]]) by name, with their daily_share (or None): every
    process reads them so that all agree on the reservations in the shared ledger. Only the
    names and shares are read here; the hub checks the rest of each entry."""
    api = doc.get("api", {})
    clients = api.get("clients", []) if isinstance(api, Mapping) else []
    out: Dict[str, Any] = {}
    for c in clients if isinstance(clients, list) else []:
        if isinstance(c, Mapping) and isinstance(c.get("name"), str):
            out[c["name"]] = c.get("daily_share")
    return out


def _shares(data: Any, clients: Mapping[str, Any]) -> Tuple[Tuple[str, float], ...]:
    """[quota.shares]: connector name -> part of the day (0..1), together at most 1. The hub's
    clients are connectors too: named there, or by their own daily_share (not both)."""
    if not isinstance(data, Mapping):
        raise ConfigError("[quota.shares] must be a table of connector = share")
    data = dict(data)
    for name, share in clients.items():
        if share is None:
            continue
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(f"api.clients {name!r}: daily_share must be a number from 0 to 1")
        if name in data:
            raise ConfigError(
                f"quota.shares.{name} and the daily_share of [[api.clients]] {name!r}: "
                "set one of them"
            )
        data[name] = share
    known = CONNECTORS + tuple(clients)
    out = []
    for name, value in data.items():
        if name not in known:
            raise ConfigError(
                f"unknown connector quota.shares.{name} (known: {', '.join(known)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"quota.shares.{name} must be a number from 0 to 1")
        out.append((name, float(value)))
    total = sum(v for _, v in out)
    if total > 1 + 1e-9:
        biggest = max(out, key=lambda item: item[1])[0]
        raise ConfigError(
            f"quota.shares add up to {total:g}, more than 1 (largest: quota.shares.{biggest})"
        )
    return tuple(out)


def _database_url(value: Any) -> str:
    """core.database: empty (SQLite files in state_dir) or a PostgreSQL URL."""
    if not isinstance(value, str):
        raise ConfigError("core.database must be a string")
    value = value.strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError("core.database must be empty or a postgresql:// URL")
    return value


def normalize_api_url(url: str) -> str:
    """vt-py wants the host part only: accept '.../api/v3' and trailing slashes too."""
    url = url.strip().rstrip("/")
    if url.endswith("/api/v3"):
        url = url[: -len("/api/v3")]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"VirusTotal API URL must start with http:// or https://: {url!r}")
    return url


def load(path: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Settings:
    """Read the file named by `path`, else $VTCONNECT_CONFIG, else ./vtconnect.toml if present."""
    env = os.environ if env is None else env
    path = (
        path
        or env.get("VTCONNECT_CONFIG")
        or ("vtconnect.toml" if os.path.exists("vtconnect.toml") else None)
    )
    if not path:
        return from_mapping({}, env=env)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return from_mapping(doc, source=str(path), env=env)


def for_emulator(
    settings: Settings, url: str, state_dir: str, api_key: str = "demo-key"
) -> Settings:
    """Settings pointing at a local emulator with a throw-away state dir; the documentation
    address ranges are allowed so that sample addresses get looked up."""
    vt = replace(settings.virustotal, api_url=normalize_api_url(url), api_key=SecretStr(api_key))
    privacy = replace(settings.privacy, allow_documentation_ranges=True)
    return replace(settings, virustotal=vt, privacy=privacy, state_dir=state_dir)
