"""The configuration page's server side: vtlookup.conf as tabs of fields, every value checked
by the parser the command itself uses (settings.build -> connectors.core.config), errors named
by section and key, and the effective settings the command would run with.

Only keys present in the app's default/vtlookup.conf can be set; README/vtlookup.conf.spec
documents each one (its `*` lines become the field's help).
"""

from __future__ import annotations

import configparser
import os
import re
import tempfile
from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlencode

from connectors.core.config import ConfigError
from vtlookup_support import es_intel, settings

Conf = Dict[str, Dict[str, str]]
# Tab -> the (section, key) it shows; a key of None means the whole section.
TABS: Tuple[Tuple[str, Tuple[Tuple[str, Optional[str]], ...]], ...] = (
    ("Account", (("virustotal", "api_url"), ("virustotal", "timeout"),
                 ("virustotal", "max_concurrency"), ("virustotal", "retries"),
                 ("virustotal", "verify_tls"))),
    ("Proxy", (("virustotal", "proxy"),)),
    ("Quota", (("quota", None), ("command", "max_lookups"), ("command", "deadline"))),
    ("Privacy and lists", (("privacy", None), ("lists", None))),
    ("Verdict policy", (("policy", None), ("cache", None))),
    ("Remote hub", (("remote", None),)),
    ("Logging", (("logging", None), ("command", "answers_ttl"), ("command", "state_dir"))),
    ("Enterprise Security", (("es_threat_intel", None),)),
)  # fmt: skip
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
NON_NEGATIVE_INTS = {
    ("command", "max_lookups"), ("command", "answers_ttl"), ("logging", "max_risky_lines"),
}  # fmt: skip
PROXY = re.compile(r"^https?://[^\s/@:]+(:\d{1,5})?/?$")


def read_conf_file(path: str) -> Conf:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path, encoding="utf-8")
    return {s: dict(cp[s]) for s in cp.sections()}


def read_spec(path: str) -> Dict[Tuple[str, str], str]:
    """(section, key) -> help text from a .conf.spec file."""
    out: Dict[Tuple[str, str], str] = {}
    section, key = "", ""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return out
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section, key = stripped[1:-1], ""
        elif "=" in stripped and not stripped.startswith(("#", "*")):
            key = stripped.split("=", 1)[0].strip()
            out[(section, key)] = ""
        elif stripped.startswith("*") and key:
            text = stripped[1:].strip()
            out[(section, key)] = (out[(section, key)] + " " + text).strip()
    return out


def check(conf: Mapping[str, Mapping[str, str]], defaults: Conf) -> List[Dict[str, str]]:
    """Every problem of a complete vtlookup.conf (defaults merged with local), by key."""
    errors: List[Dict[str, str]] = []
    rest = {s: dict(k) for s, k in defaults.items()}  # conf without the values already refused
    for section, keys in conf.items():
        if section == "default":  # splunkd's global stanza; the command ignores it
            continue
        for key, value in keys.items():
            if section not in defaults or key not in defaults[section]:
                errors.append(_err(section, key, f"[{section}] {key} is not a setting"))
                continue
            ours = _check_ours(section, key, str(value))
            errors.extend(ours)
            if not ours:
                rest[section][key] = str(value)
    try:
        _build(rest)
    except ConfigError as whole:  # attribute it: try each non-default value on the defaults
        found = []
        for section, keys in rest.items():
            for key, value in keys.items():
                if value == defaults[section].get(key):
                    continue
                trial = {s: dict(k) for s, k in defaults.items()}
                trial[section][key] = value
                try:
                    _build(trial)
                except ConfigError as exc:
                    found.append(_err(section, key, str(exc)))
        errors.extend(found or [_err("", "", str(whole))])
    return errors


def check_ours(conf: Mapping[str, Mapping[str, str]]) -> List[str]:
    """The command's own check of the keys it reads itself (the same rules as the page)."""
    return [
        e["message"]
        for section, keys in conf.items()
        for key, value in keys.items()
        for e in _check_ours(section, key, str(value))
    ]


def _check_ours(section: str, key: str, value: str) -> List[Dict[str, str]]:
    """The keys the command reads itself (the core checks the rest)."""
    v = value.strip()
    if (section, key) in NON_NEGATIVE_INTS or (section, key) == ("command", "deadline"):
        low = 1 if key == "deadline" else 0
        if not re.fullmatch(r"\d+", v) or int(v) < low or (key == "deadline" and int(v) > 86400):
            bound = "1 to 86400" if key == "deadline" else "a whole number, 0 or more"
            return [_err(section, key, f"[{section}] {key} must be {bound}, not {value!r}")]
    if section == es_intel.SECTION:
        problem = es_intel.problems(key, v)
        return [_err(section, key, problem)] if problem else []
    if (section, key) == ("remote", "url"):
        from vtlookup_support.hub import url_problem

        problem = url_problem(v)
        return [_err(section, key, problem)] if problem else []
    if (section, key) == ("cache", "backend") and v.lower() not in ("kvstore", "sqlite"):
        return [_err(section, key, f"[cache] backend must be kvstore or sqlite, not {value!r}")]
    if (section, key) == ("logging", "level") and v.upper() not in LOG_LEVELS:
        choices = ", ".join(LOG_LEVELS)
        return [_err(section, key, f"[logging] level must be one of {choices}, not {value!r}")]
    if (section, key) == ("virustotal", "proxy") and v and not PROXY.match(v):
        return [
            _err(
                section,
                key,
                "[virustotal] proxy must look like http://host:port (credentials go in the "
                "Proxy tab's password field; the value is not repeated here)",
            )
        ]
    return []


def _err(section: str, key: str, message: str) -> Dict[str, str]:
    return {"section": section, "key": key, "message": message}


def _build(conf: Mapping[str, Mapping[str, str]]) -> Any:
    with tempfile.TemporaryDirectory() as state:
        core, _ = settings.build(conf, {settings.KEY_USER: "x"}, state, env={})
    return core


def effective(conf: Mapping[str, Mapping[str, str]]) -> Dict[str, Dict[str, str]]:
    """What the command runs with, as text, including what the core derives (quota limits)."""
    core = _build(conf)
    out: Dict[str, Dict[str, str]] = {}
    for name in settings.SECTIONS:
        section = asdict(getattr(core, name))
        section.pop("api_key", None)
        section.pop("path", None)
        out[name] = {k: _text(v) for k, v in section.items()}
    per_minute, per_day = core.quota.limits()
    out["quota"]["per_minute"] = str(per_minute) if per_minute else "no local limit"
    out["quota"]["per_day"] = str(per_day) if per_day else "no local limit"
    for section in conf:
        if section not in out and section != "default":
            out[section] = {k: str(v) for k, v in conf[section].items()}
    return out


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


def tabs(
    conf: Conf, defaults: Conf, local: Conf, spec: Dict[Tuple[str, str], str]
) -> List[Dict[str, Any]]:
    out = []
    for name, members in TABS:
        fields = []
        for section, only in members:
            for key in defaults.get(section, {}):
                if only is not None and key != only:
                    continue
                fields.append(
                    {
                        "section": section,
                        "key": key,
                        "value": conf.get(section, {}).get(key, ""),
                        "default": defaults[section][key],
                        "source": "local" if key in local.get(section, {}) else "default",
                        "help": spec.get((section, key), ""),
                    }
                )
        out.append({"name": name, "fields": fields})
    return out


def merge(defaults: Conf, *layers: Mapping[str, Mapping[str, str]]) -> Conf:
    out = {s: dict(k) for s, k in defaults.items()}
    for layer in layers:
        for section, keys in layer.items():
            out.setdefault(section, {}).update({k: str(v) for k, v in keys.items()})
    return out


def changes(body: Any) -> Conf:
    """The POSTed {"section": {"key": "value"}} document, or ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError('send {"section": {"key": "value", ...}, ...}')
    out: Conf = {}
    for section, keys in body.items():
        if not isinstance(keys, dict):
            raise ValueError(f"[{section}] must be an object of key: value")
        for key, value in keys.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif not isinstance(value, (str, int, float)):
                raise ValueError(f"[{section}] {key} must be given as text")
            out.setdefault(str(section), {})[str(key)] = str(value)
    return out


def app_paths(app_dir: str) -> Tuple[str, str]:
    return (
        os.path.join(app_dir, "default", settings.CONF + ".conf"),
        os.path.join(app_dir, "README", settings.CONF + ".conf.spec"),
    )


def reply(req: Any, app_dir: str) -> Tuple[int, Dict[str, Any]]:
    """GET: the tabs, effective settings and problems; POST {"section": {"key": "value"}}:
    checked as a whole, saved through splunkd with the caller's session only when all is well."""
    from splunklib.binding import HTTPError

    from vtlookup_support import rest

    default_path, spec_path = app_paths(app_dir)
    defaults = read_conf_file(default_path)
    svc = rest.service(req.rest_uri, req.user_token)
    current = merge(defaults, settings.read_conf_rest(svc, rest.APP))
    if req.method == "POST":
        try:
            new = changes(req.body())
        except ValueError as exc:
            return rest.error(400, f"nothing saved: {exc}")
        unknown = [
            _err(sec, key, f"[{sec}] {key} is not a setting")
            for sec, keys in new.items()
            for key in keys
            if key not in defaults.get(sec, {})
        ]  # "default" too: splunkd's global stanza is nothing the page sets
        conf = merge(current, new)
        errors = unknown + check(conf, defaults)
        if errors:
            return rest.error(400, f"nothing saved: {len(errors)} value(s) wrong", errors)
        try:
            for section, keys in new.items():
                # As a form body, not keyword arguments: a key named like one of splunklib's
                # parameters ([remote] url) would collide with it.
                svc.post(f"configs/conf-{settings.CONF}/{section}", body=urlencode(keys))
        except HTTPError as exc:
            if exc.status == 403:
                return rest.error(403, "splunkd refused the change: saving settings takes admin")
            raise
        current = merge(defaults, settings.read_conf_rest(svc, rest.APP))
    elif req.method != "GET":
        return rest.error(405, "GET or POST")
    local = read_conf_file(os.path.join(app_dir, "local", settings.CONF + ".conf"))
    errors = check(current, defaults)
    stored: Dict[str, str] = {}
    if req.system_token:  # whether the secrets exist, never their values
        stored = settings.read_secrets(rest.service(req.rest_uri, req.system_token), rest.APP)
    return 200, {
        "tabs": tabs(current, defaults, local, read_spec(spec_path)),
        "effective": {} if errors else effective(current),
        "errors": errors,
        "api_key_stored": bool(stored.get(settings.KEY_USER)),
        "proxy_credentials_stored": bool(stored.get(settings.PROXY_USER)),
        "remote_token_stored": bool(stored.get(settings.HUB_USER)),
    }
