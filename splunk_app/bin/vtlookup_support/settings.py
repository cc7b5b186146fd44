"""connectors.core Settings from what Splunk holds: vtlookup.conf (over REST, else the app's own
default/ and local/ files) and the API key from storage/passwords (realm = the app name)."""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import fields
from typing import Any, Dict, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

from connectors.core import config as core_config

CONF = "vtlookup"
KEY_USER = "api_key"
PROXY_USER = "proxy"
SECTIONS = {
    "virustotal": core_config.VirusTotalSettings,
    "privacy": core_config.PrivacySettings,
    "policy": core_config.PolicySettings,
    "cache": core_config.CacheSettings,
    "quota": core_config.QuotaSettings,
    "lists": core_config.ListsSettings,
}
# Keys of ours, read by the command rather than the core ([command] and [remote] whole).
LOCAL_KEYS = {"cache": {"backend"}, "command": {"max_lookups", "deadline", "state_dir"}}
LOCAL_SECTIONS = ("command", "remote")
HUB_USER = "remote_token"  # the hub's client token (vtlookup_support/hub.py)
TRUE = {"1", "t", "true", "y", "yes", "on"}
FALSE = {"0", "f", "false", "n", "no", "off", ""}


def _typed(section: str, key: str, text: str) -> Any:
    """A .conf string as the type the core's dataclass expects (its own checks do the rest)."""
    cls = SECTIONS.get(section)
    known = {f.name: f.default for f in fields(cls)} if cls else {}
    if key not in known:
        return text  # the core names the unknown key in its error
    default = known[key]
    value = text.strip()
    if isinstance(default, bool):
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise core_config.ConfigError(f"{CONF}.conf [{section}] {key} must be true or false")
    if isinstance(default, (int, float)):
        try:
            return type(default)(float(value)) if value else default
        except ValueError:
            raise core_config.ConfigError(
                f"{CONF}.conf [{section}] {key} must be a number, not {value!r}"
            ) from None
    if isinstance(default, tuple):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value or None if default is None else value


def read_conf_files(app_dir: str) -> Dict[str, Dict[str, str]]:
    """default/ then local/ vtlookup.conf, for when splunkd's REST API cannot be asked."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    for sub in ("default", "local"):
        cp.read(os.path.join(app_dir, sub, CONF + ".conf"), encoding="utf-8")
    return {s: dict(cp[s]) for s in cp.sections()}


def read_conf_rest(service: Any, app: str) -> Dict[str, Dict[str, str]]:
    resp = service.get(f"configs/conf-{CONF}", owner="nobody", app=app, output_mode="json", count=0)
    doc = json.loads(resp.body.read())
    out: Dict[str, Dict[str, str]] = {}
    for entry in doc.get("entry", []):
        content = entry.get("content") or {}
        out[entry["name"]] = {
            k: "" if v is None else str(v)
            for k, v in content.items()
            if ":" not in k and k != "disabled"
        }
    return out


def read_secrets(service: Any, app: str) -> Dict[str, str]:
    """username -> clear password for the app's realm."""
    resp = service.get(
        "storage/passwords",
        owner="nobody",
        app=app,
        output_mode="json",
        count=0,
        search=f"realm={app}",
    )
    doc = json.loads(resp.body.read())
    out: Dict[str, str] = {}
    for entry in doc.get("entry", []):
        c = entry.get("content") or {}
        if c.get("realm") == app and c.get("username"):
            out[str(c["username"])] = str(c.get("clear_password") or "")
    return out


def build(
    conf: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, str],
    state_dir: str,
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[core_config.Settings, Dict[str, Dict[str, str]]]:
    """(core Settings, our own keys). Raises ConfigError with the .conf key at fault."""
    doc: Dict[str, Any] = {}
    local: Dict[str, Dict[str, str]] = {s: {} for s in (*LOCAL_KEYS, *LOCAL_SECTIONS)}
    for section, keys in conf.items():
        if section == "default" or section not in SECTIONS:
            if section in LOCAL_SECTIONS:
                local[section].update(keys)
            continue
        table: MutableMapping[str, Any] = {}
        for key, text in keys.items():
            if key in LOCAL_KEYS.get(section, ()):
                local[section][key] = text
            elif (
                key in ("api_key", "path")
                or (section, key) == ("virustotal", "proxy")
                and (not text.strip())
            ):
                continue  # the key comes from storage/passwords; files are placed by us
            else:
                table[key] = _typed(section, key, text)
        doc[section] = table
    vt = doc.setdefault("virustotal", {})
    vt["api_key"] = secrets.get(KEY_USER, "")
    if vt.get("proxy") and secrets.get(PROXY_USER):
        vt["proxy"] = with_credentials(vt["proxy"], secrets[PROXY_USER])
    doc["core"] = {"state_dir": state_dir}
    env = {} if env is None else env
    # Only the API URL may come from the environment (tests and demos point it at an emulator).
    only = {"VT_API_URL": env["VT_API_URL"]} if env.get("VT_API_URL") else {}
    return core_config.from_mapping(doc, source=f"{CONF}.conf", env=only), local


def with_credentials(proxy: str, userpass: str) -> str:
    parts = urlsplit(proxy)
    user, _, password = userpass.partition(":")
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def state_dir(configured: str, env: Mapping[str, str], dispatch_dir: str) -> str:
    """Where the SQLite cache and the host's quota ledger live: outside the app directory
    (Splunk Cloud does not allow writing there), shared by every search on the host."""
    if configured.strip():
        return configured.strip()
    if env.get("SPLUNK_DB"):
        return os.path.join(env["SPLUNK_DB"], "vtconnect")
    if env.get("SPLUNK_HOME"):
        return os.path.join(env["SPLUNK_HOME"], "var", "lib", "splunk", "vtconnect")
    return os.path.join(dispatch_dir or ".", "vtconnect")


def describe(errors: List[str]) -> str:
    return "; ".join(errors)
