"""The [taxii] section of vtconnect.toml: API root, collections, users, tokens, limits."""

from __future__ import annotations

import base64
import difflib
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from connectors.core.config import ConfigError, check_known

from .feed_options import FEED_KEYS, NamedFeed, load_feeds

PBKDF2_ITERATIONS = 200_000
PUBLISHABLE_ORDER = ("malicious", "suspicious", "harmless", "undetected")
PUBLISHABLE = set(PUBLISHABLE_ORDER)


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """pbkdf2_sha256$iterations$salt$hash, what `vtconnect taxii passwd` prints."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


@dataclass
class Collection:
    id: str
    title: str
    description: str = ""
    public: bool = False  # anonymous read
    readers: Tuple[str, ...] = ()  # user names; "*" = every authenticated user
    writers: Tuple[str, ...] = ()
    publish: Tuple[str, ...] = ()  # verdicts from the core's verdict log published here
    kinds: Tuple[str, ...] = ()  # only these kinds (file, url, domain, ip); empty: all
    test: bool = False  # may hold objects made from the vtconnect emulator's answers

    def can_read(self, user: Optional[str]) -> bool:
        if user is None:
            return self.public
        return self.public or "*" in self.readers or user in self.readers

    def can_write(self, user: Optional[str]) -> bool:
        return user is not None and ("*" in self.writers or user in self.writers)


@dataclass
class TaxiiConfig:
    api_root: str = "api"
    title: str = "vtconnect TAXII 2.1"
    description: str = "VirusTotal-derived indicators"
    page_size: int = 100
    max_page_size: int = 1000
    v20_max_objects: int = 10000  # TAXII 2.0: most objects one answer carries (no Range)
    max_body_bytes: int = 10 * 1024 * 1024
    store: str = ""  # SQLite path; "" -> <state_dir>/taxii.db
    public_url: str = ""  # base URL in discovery behind a proxy; "" -> from the request
    tlp: str = "green"
    poll_seconds: float = 30.0
    collections: List[Collection] = field(default_factory=list)
    users: Dict[str, str] = field(default_factory=dict)  # name -> password hash
    tokens: Dict[str, str] = field(default_factory=dict)  # sha256(token) hex -> user name
    sources: List[Dict[str, Any]] = field(default_factory=list)  # VirusTotal IOC sources
    feeds: List[NamedFeed] = field(default_factory=list)  # [[taxii.feeds]]: /feeds/<name>.txt

    def collection(self, key: str) -> Optional[Collection]:
        return next((c for c in self.collections if c.id == key), None)


def _str(section: Mapping[str, Any], key: str, default: str, where: str) -> str:
    v = section.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key} must be a string")
    return v


def _names(section: Mapping[str, Any], key: str, where: str) -> Tuple[str, ...]:
    v = section.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}.{key} must be a list of strings")
    return tuple(v)


KEYS = {  # a misspelt key is an error, not a silently ignored setting
    "taxii": ("host", "port", "tls_cert", "tls_key", "api_root", "title", "description",
              "page_size", "max_page_size", "v20_max_objects", "max_body_bytes", "store", "tlp",
              "poll_seconds", "public_url", "collections", "users", "tokens", "sources", "feeds"),
    "collections": ("id", "title", "description", "public", "read", "write", "publish", "kinds",
                    "test"),
    "users": ("name", "password_hash"),
    "tokens": ("sha256", "user"),
    "sources": ("type", "id", "query", "collection", "every", "verdicts"),
    "feeds": FEED_KEYS,
}  # fmt: skip


def _known(table: Mapping[str, Any], keys: Tuple[str, ...], where: str) -> None:
    check_known(table, keys, where)


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false")
    return value


def _verdicts(values: Tuple[str, ...], where: str) -> None:
    wrong = sorted(set(values) - PUBLISHABLE)
    if wrong:
        raise ConfigError(f"{where}: {wrong[0]!r} is not one of {', '.join(PUBLISHABLE_ORDER)}")


def load(raw: Mapping[str, Any]) -> TaxiiConfig:
    section = raw.get("taxii", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[taxii] must be a table")
    _known(section, KEYS["taxii"], "taxii")
    for name in ("collections", "users", "tokens", "sources", "feeds"):
        items = section.get(name, []) or []
        if not isinstance(items, list):
            raise ConfigError(f"taxii.{name} must be a list of tables ([[taxii.{name}]])")
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ConfigError(f"taxii.{name}[{i}] must be a table")
            _known(item, KEYS[name], f"taxii.{name}[{i}]")
    cfg = TaxiiConfig(
        api_root=_str(section, "api_root", "api", "taxii"),
        title=_str(section, "title", TaxiiConfig.title, "taxii"),
        description=_str(section, "description", TaxiiConfig.description, "taxii"),
        store=_str(section, "store", "", "taxii"),
        tlp=_str(section, "tlp", "green", "taxii"),
        public_url=_str(section, "public_url", "", "taxii").rstrip("/"),
    )
    if cfg.public_url and not cfg.public_url.startswith(("https://", "http://")):
        raise ConfigError("taxii.public_url must be an http(s):// URL (what consumers connect to)")
    if not cfg.api_root.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("taxii.api_root must be letters, digits, '-' or '_'")
    if cfg.api_root in ("taxii2", "feeds", "status", "healthz", "metrics"):
        raise ConfigError(f"taxii.api_root cannot be {cfg.api_root!r}: that path is taken")
    if cfg.tlp not in ("white", "green", "amber", "red"):
        raise ConfigError("taxii.tlp must be white, green, amber or red")
    for key in ("page_size", "max_page_size", "v20_max_objects", "max_body_bytes", "poll_seconds"):
        if key in section:
            v = section[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"taxii.{key} must be a positive number")
            setattr(cfg, key, type(getattr(cfg, key))(v))
    titles = set()
    for i, c in enumerate(section.get("collections", []) or []):
        where = f"taxii.collections[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where} must be a table")
        cid = _str(c, "id", "", where)
        try:
            if uuid.UUID(cid).version != 4 or str(uuid.UUID(cid)) != cid:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"{where}.id must be a lower-case UUIDv4 (consumers such as "
                "Microsoft Sentinel reject others)"
            ) from None
        title = _str(c, "title", "", where)
        if not title or title in titles:
            raise ConfigError(
                f"{where}.title must be present and unique (consumers look collections up by title)"
            )
        titles.add(title)
        cfg.collections.append(
            Collection(
                id=cid,
                title=title,
                description=_str(c, "description", "", where),
                public=bool(c.get("public", False)),
                readers=_names(c, "read", where),
                writers=_names(c, "write", where),
                publish=_names(c, "publish", where),
                kinds=_names(c, "kinds", where),
                test=_bool(c, "test", where),
            )
        )
        _verdicts(cfg.collections[-1].publish, f"{where}.publish")
        bad = set(cfg.collections[-1].kinds) - {"file", "url", "domain", "ip"}
        if bad:
            raise ConfigError(
                f"{where}.kinds: unknown kind {sorted(bad)[0]!r} (file, url, domain, ip)"
            )
    for i, u in enumerate(section.get("users", []) or []):
        where = f"taxii.users[{i}]"
        name, pw = _str(u, "name", "", where), _str(u, "password_hash", "", where)
        if not name or not pw.startswith("pbkdf2_sha256$"):
            raise ConfigError(
                f"{where} needs a name and a password_hash from `vtconnect taxii passwd`"
            )
        cfg.users[name] = pw
    for i, t in enumerate(section.get("tokens", []) or []):
        where = f"taxii.tokens[{i}]"
        digest, user = _str(t, "sha256", "", where), _str(t, "user", "", where)
        if len(digest) != 64 or not user:
            raise ConfigError(f"{where} needs sha256 (hex digest of the token) and user")
        cfg.tokens[digest.lower()] = user
    _rights_name_users(cfg)
    for i, src in enumerate(section.get("sources", []) or []):
        where = f"taxii.sources[{i}]"
        if not isinstance(src, Mapping):
            raise ConfigError(f"{where} must be a table")
        kind = _str(src, "type", "", where)
        if kind not in ("collection", "livehunt", "ioc_stream", "search"):
            raise ConfigError(f"{where}.type must be collection, livehunt, ioc_stream or search")
        if kind == "collection" and not _str(src, "id", "", where):
            raise ConfigError(f"{where}.id (the VirusTotal collection id) is required")
        if kind == "search" and not _str(src, "query", "", where):
            raise ConfigError(f"{where}.query is required")
        if cfg.collection(_str(src, "collection", "", where)) is None:
            raise ConfigError(f"{where}.collection must name a [[taxii.collections]] id")
        _verdicts(_names(src, "verdicts", where), f"{where}.verdicts")
        every = src.get("every", 3600)
        if isinstance(every, bool) or not isinstance(every, (int, float)) or every < 60:
            raise ConfigError(f"{where}.every must be at least 60 seconds")
        cfg.sources.append(dict(src, every=float(every)))
    cfg.feeds = load_feeds(section.get("feeds", []) or [], tuple(c.id for c in cfg.collections))
    return cfg


def _rights_name_users(cfg: TaxiiConfig) -> None:
    """A misspelt user in read/write would silently lock that user out (or keep a feed closed):
    every name must be a [[taxii.users]] name or the user of a [[taxii.tokens]] entry."""
    known = set(cfg.users) | set(cfg.tokens.values())
    for i, c in enumerate(cfg.collections):
        for key, names in (("read", c.readers), ("write", c.writers)):
            for name in names:
                if name != "*" and name not in known:
                    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(
                        f"taxii.collections[{i}].{key}: no user {name!r} in [[taxii.users]] "
                        f"or [[taxii.tokens]]{hint}"
                    )
