"""The [webhook] section: sources, each with a format, an auth scheme and limits."""

from __future__ import annotations

import base64
import binascii
from dataclasses import MISSING, dataclass, field
from typing import Any, Dict, Mapping
from urllib.parse import urlsplit

from connectors.core.config import ConfigError, check_known

from .formats import FORMATS

SCHEMES = ("standard", "github", "bearer", "header", "basic", "url", "none")


@dataclass
class Source:
    name: str
    format: str = "auto"
    auth: str = "bearer"
    secret: str = field(default="", repr=False)  # never in logs or reprs
    username: str = ""
    header: str = "X-Webhook-Token"
    max_body_bytes: int = 1024 * 1024
    rate_per_minute: int = 600
    output: str = "vtconnect"  # vtconnect, elastic, sentinel or stix (see shapes.py)
    # Where the enriched alert goes (async jobs), signed as Standard Webhooks with callback_secret.
    callback_url: str = ""
    callback_secret: str = field(default="", repr=False)  # whsec_<base64>
    callback_hosts: tuple = ()  # allow-list of host names; empty: any public host
    allow_http: bool = False  # plain http callbacks (tests, labs)
    allow_private: bool = False  # callbacks to private/loopback addresses (SSRF guard off)
    max_attempts: int = 8  # then the delivery is dead-lettered (`vtconnect webhook replay`)
    retry_base: float = 2.0  # seconds; doubled per attempt, at most 300


@dataclass
class WebhookConfig:
    outbox: str = ""  # SQLite path; "" -> <state_dir>/webhook.db
    max_wait: float = 30.0  # seconds a synchronous caller may ask for
    shutdown_grace: float = 5.0  # seconds the job in hand may take to finish at shutdown
    keep_days: float = 7.0  # finished jobs (and their idempotency keys) are dropped after this
    # PostgreSQL ([core] database): seconds a replica holds a claimed job or callback; a killed
    # replica's work is taken over by another one after this
    lease_seconds: float = 300.0
    sources: Dict[str, Source] = field(default_factory=dict)


# host, port and TLS are read by the serve loop; the rest here.
SECTION_KEYS = ("host", "port", "tls_cert", "tls_key", "outbox", "max_wait", "shutdown_grace",
                "keep_days", "lease_seconds", "sources")  # fmt: skip


def load(raw: Mapping[str, Any]) -> WebhookConfig:
    section = raw.get("webhook", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[webhook] must be a table")
    check_known(section, SECTION_KEYS, "webhook")
    if not isinstance(section.get("sources", []), list):
        raise ConfigError("webhook.sources must be a list of tables ([[webhook.sources]])")
    max_wait = section.get("max_wait", WebhookConfig.max_wait)
    if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or max_wait <= 0:
        raise ConfigError("webhook.max_wait must be a number of seconds above 0")
    grace = section.get("shutdown_grace", WebhookConfig.shutdown_grace)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ConfigError("webhook.shutdown_grace must be a number of seconds, 0 or more")
    keep = section.get("keep_days", WebhookConfig.keep_days)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or keep <= 0:
        raise ConfigError("webhook.keep_days must be a number of days above 0")
    lease = section.get("lease_seconds", WebhookConfig.lease_seconds)
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or lease <= 0:
        raise ConfigError("webhook.lease_seconds must be a number of seconds above 0")
    cfg = WebhookConfig(
        outbox=str(section.get("outbox", "")),
        max_wait=float(max_wait),
        shutdown_grace=grace,
        keep_days=float(keep),
        lease_seconds=float(lease),
    )
    for i, s in enumerate(section.get("sources", []) or []):
        where = f"webhook.sources[{i}]"
        if not isinstance(s, Mapping):
            raise ConfigError(f"{where} must be a table")
        check_known(s, Source.__dataclass_fields__, where)
        _check_types(where, s)
        src = Source(**dict(s))
        if not src.name or not src.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}.name must be letters, digits, '-' or '_'")
        if src.name in cfg.sources:
            raise ConfigError(f"{where}.name {src.name!r} is used twice")
        if src.format not in FORMATS:
            raise ConfigError(f"{where}.format must be one of {', '.join(FORMATS)}")
        if src.auth not in SCHEMES:
            raise ConfigError(f"{where}.auth must be one of {', '.join(SCHEMES)}")
        if src.auth != "none" and len(src.secret) < 16:
            raise ConfigError(
                f"{where}.secret must be at least 16 characters "
                "(auth = 'none' must be chosen explicitly)"
            )
        if src.auth == "standard" and not _is_whsec(src.secret):
            raise ConfigError(f"{where}.secret must be whsec_<base64> for auth = 'standard'")
        if src.output not in ("vtconnect", "elastic", "sentinel", "stix"):
            raise ConfigError(f"{where}.output must be vtconnect, elastic, sentinel or stix")
        if src.callback_url:
            if not src.callback_url.startswith(("https://", "http://")):
                raise ConfigError(f"{where}.callback_url must be an http(s) URL")
            if src.callback_url.startswith("http://") and not src.allow_http:
                raise ConfigError(f"{where}.callback_url must be https (or set allow_http)")
            try:  # a bad port or no host would otherwise fail at every delivery attempt
                parts = urlsplit(src.callback_url)
                parts.port  # noqa: B018 (raises ValueError when out of range)
            except ValueError as exc:
                raise ConfigError(f"{where}.callback_url is not a valid URL: {exc}") from None
            if not parts.hostname:
                raise ConfigError(f"{where}.callback_url has no host")
            # Callbacks are always signed: receivers must be able to tell us from anyone else.
            if not _is_whsec(src.callback_secret):
                raise ConfigError(f"{where}.callback_secret must be whsec_<base64>")
            src.callback_hosts = tuple(src.callback_hosts)
        cfg.sources[src.name] = src
    return cfg


def _check_types(where: str, s: Mapping[str, Any]) -> None:
    """Each key of the type of its default (ints allowed for floats), numbers above 0, so that
    a wrong value is a message at start and never a failing request."""
    if "name" not in s:
        raise ConfigError(f"{where}.name is required")
    for key, value in s.items():
        f = Source.__dataclass_fields__[key]
        default = f.default if f.default is not MISSING else ""
        want = (int, float) if isinstance(default, float) else type(default)
        ok = (
            isinstance(value, list)
            if want is tuple
            else isinstance(value, want) and isinstance(value, bool) == isinstance(default, bool)
        )
        if not ok:
            kind = "list" if want is tuple else type(default).__name__
            raise ConfigError(f"{where}.{key} must be of type {kind}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and value <= 0:
            raise ConfigError(f"{where}.{key} must be above 0")
        if want is tuple and not all(isinstance(h, str) for h in value):
            raise ConfigError(f"{where}.{key} must be a list of host names")


def _is_whsec(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret[6:], validate=True)) >= 16
    except (binascii.Error, ValueError):
        return False
