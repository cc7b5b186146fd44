"""[api] (the hub's clients, each with a bearer token) and [remote] (where a thin client finds
its hub)."""

from __future__ import annotations

import hashlib
import hmac
import os
import string
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from connectors.core.config import ConfigError, check_known
from connectors.core.quota import Priority

MAX_VALUES = 10_000  # per request
MAX_DEADLINE = 300.0  # seconds a caller may ask the hub to wait
DEFAULT_DEADLINE = 30.0
MAX_BODY_BYTES = 8 * 1024 * 1024  # 10,000 values of ~800 characters
CLIENT_KEYS = ("name", "token_sha256", "priority", "daily_share")
PRIORITIES = tuple(p.name.lower() for p in Priority)


@dataclass(frozen=True)
class Client:
    name: str  # the connector name in the verdict log and in [quota.shares]
    token_sha256: bytes = field(repr=False)  # 32 bytes
    priority: Priority = Priority.INTERACTIVE  # the highest it may ask for
    daily_share: Optional[float] = None  # merged into [quota.shares] by the core's config


@dataclass(frozen=True)
class ApiConfig:
    clients: Tuple[Client, ...] = ()

    def client_for(self, token: str) -> Optional[Client]:
        """The client whose token this is. Every digest is compared, in constant time, so the
        time taken says nothing about which (or whether one) matched."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for c in self.clients:
            if hmac.compare_digest(digest, c.token_sha256):
                found = c
        return found


def load(raw: Mapping[str, Any]) -> ApiConfig:
    section = raw.get("api", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[api] must be a table")
    check_known(section, ("clients",), "api")
    entries = section.get("clients", [])
    if not isinstance(entries, list):
        raise ConfigError("api.clients must be a list of tables ([[api.clients]])")
    clients: Dict[str, Client] = {}
    digests = set()
    for i, c in enumerate(entries):
        where = f"api.clients[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where} must be a table")
        check_known(c, CLIENT_KEYS, where)
        name = c.get("name")
        if not isinstance(name, str) or not is_name(name):
            raise ConfigError(f"{where}.name must be letters, digits, '-' or '_' (at most 64)")
        if name in clients:
            raise ConfigError(f"{where}.name {name!r} is used twice")
        digest = c.get("token_sha256")
        if not (
            isinstance(digest, str)
            and len(digest) == 64
            and all(ch in string.hexdigits for ch in digest)
        ):
            raise ConfigError(
                f"{where}.token_sha256 must be 64 hex digits (`vtconnect api token {name}`)"
            )
        if digest.lower() in digests:
            raise ConfigError(f"{where}.token_sha256 is the token of another client")
        digests.add(digest.lower())
        prio = c.get("priority", "interactive")
        if prio not in PRIORITIES:
            raise ConfigError(f"{where}.priority must be one of {', '.join(PRIORITIES)}")
        share = c.get("daily_share")
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1
        ):
            raise ConfigError(f"{where}.daily_share must be a number from 0 to 1")
        clients[name] = Client(
            name,
            bytes.fromhex(digest),
            Priority.parse(prio),
            None if share is None else float(share),
        )
    return ApiConfig(tuple(clients.values()))


def is_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum() and (
        name.isascii()
    )


@dataclass(frozen=True)
class Remote:
    url: str = ""  # "" -> no hub: look values up directly
    token: str = field(default="", repr=False)


def remote(
    raw: Mapping[str, Any], env: Optional[Mapping[str, str]] = None, url: Optional[str] = None
) -> Remote:
    """[remote] url and token; VTCONNECT_REMOTE / VTCONNECT_REMOTE_TOKEN override them, and a
    `--remote URL` given on the command line overrides both."""
    env = os.environ if env is None else env
    section = raw.get("remote", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[remote] must be a table")
    check_known(section, ("url", "token"), "remote")
    for key in ("url", "token"):
        if not isinstance(section.get(key, ""), str):
            raise ConfigError(f"remote.{key} must be a string")
    chosen = (url or env.get("VTCONNECT_REMOTE") or section.get("url", "")).strip().rstrip("/")
    token = (env.get("VTCONNECT_REMOTE_TOKEN") or section.get("token", "")).strip()
    if chosen and not chosen.startswith(("http://", "https://")):
        raise ConfigError(f"remote.url must be an http(s) URL: {chosen!r}")
    if chosen and not token:
        raise ConfigError(
            "remote.url is set but no token: set [remote] token or VTCONNECT_REMOTE_TOKEN"
        )
    return Remote(chosen, token)
