"""The [webhook] section: sources, each with a format, an auth scheme and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

from connectors.core.config import ConfigError

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
    sources: Dict[str, Source] = field(default_factory=dict)


def load(raw: Mapping[str, Any]) -> WebhookConfig:
    section = raw.get("webhook", {}) or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[webhook] must be a table")
    cfg = WebhookConfig(outbox=str(section.get("outbox", "")))
    for i, s in enumerate(section.get("sources", []) or []):
        where = f"webhook.sources[{i}]"
        if not isinstance(s, Mapping):
            raise ConfigError(f"{where} must be a table")
        unknown = set(s) - set(Source.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]}")
        try:
            src = Source(**dict(s))
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
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
        if src.output not in ("vtconnect", "elastic", "sentinel", "stix"):
            raise ConfigError(f"{where}.output must be vtconnect, elastic, sentinel or stix")
        if src.callback_url:
            if not src.callback_url.startswith(("https://", "http://")):
                raise ConfigError(f"{where}.callback_url must be an http(s) URL")
            if src.callback_url.startswith("http://") and not src.allow_http:
                raise ConfigError(f"{where}.callback_url must be https (or set allow_http)")
            if src.callback_secret and not src.callback_secret.startswith("whsec_"):
                raise ConfigError(f"{where}.callback_secret must be whsec_<base64>")
            src.callback_hosts = tuple(src.callback_hosts)
        cfg.sources[src.name] = src
    return cfg
