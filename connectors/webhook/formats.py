"""Where each product puts the indicators in its alerts.

Structured fields first (by documented field names), then free-text fields (capped) through the
core's extractor, which refangs. `auto` recognises a format by its shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from connectors.core.extract import extract

from . import embedded

FREE_TEXT_CAP = 16_384  # characters of free text read per alert
COMMAND_TEXT_CAP = 16_384  # and of command lines and script text, apart (scripts are long)
# Field names that hold indicators wherever they appear (ECS, CEF-ish, vendor habits).
KNOWN_KEYS = {
    "ip", "src_ip", "dst_ip", "srcip", "dstip", "source_ip", "destination_ip", "client_ip",
    "remote_ip", "address", "ipaddress", "ip_address", "local_ip", "external_ip", "dest", "src",
    "dest_ip", "dest_host", "src_host", "destination", "query",
    "domain", "domainname", "domain_name", "hostname", "host_name", "fqdn", "dest_domain",
    "url", "uri", "full", "request_url", "dest_url",
    "md5", "sha1", "sha256", "hash", "hashvalue", "file_hash", "sha256_after", "md5_after",
    "sha1_after", "filehash", "offense_source", "sha256string", "md5string", "iocvalue",
    "localip", "agentipv4", "externalip", "sha1string", "url_string",
}  # fmt: skip
FREE_TEXT_KEYS = {"message", "description", "title", "summary", "full_log", "text", "reason",
                  "rule_description", "alertdisplayname", "details", "body", "event_msg",
                  "detectdescription", "raw"}  # fmt: skip
# Observables that products list as {type, value} pairs (TheHive, OCSF).
TYPED_VALUE_TYPES = {"ip", "domain", "fqdn", "url", "hash", "file_hash", "md5", "sha1", "sha256",
                     "ip address", "url string", "hostname", "file hash"}  # fmt: skip
SKIP_KEYS = {"user_agent", "useragent", "process", "command_line", "commandline", "path"}
# Command lines and script text, read as free text of their own: EDR `CommandLine`,
# `ParentCommandLine`, Defender `ProcessCommandLine`, ECS `process.command_line`, SentinelOne
# `tgt.process.cmdline`, PowerShell `ScriptBlockText` / `powershell.file.script_block_text`,
# Splunk CIM `process` / `parent_process` (the full command string there).
COMMAND_SUFFIXES = ("commandline", "cmdline", "scriptblocktext")
COMMAND_KEYS = {"process", "parentprocess", "maliciousprocessarguments", "scriptcontent"}
# .NET names in scripts look like domains (Microsoft.PowerShell.Management: .management is a TLD).
DOTNET_NAME = re.compile(r"\b(?:System|Microsoft|Windows)(?:\.[A-Z]\w*)+")
# A value with its type in front: "md5 44d8...", "sha256: 9f86...", "ip=1.2.3.4".
LABELLED = re.compile(
    r"^\s*(?:md5|sha-?1|sha-?256|ip(?:v[46])?(?:[ _-]?addr(?:ess)?)?|domain(?:[ _-]?name)?|fqdn"
    r"|host(?:[ _-]?name)?|url|uri|(?:file[ _-]?)?hash)\s*(?:[:=]\s*|\s+)(?P<value>\S+)\s*$",
    re.IGNORECASE,
)


def _walk(node: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """(dotted path, leaf value) in document order; an explicit stack, so that no nesting depth
    can exhaust Python's recursion limit."""
    stack: List[Iterator[Tuple[str, Any]]] = [iter([(prefix, node)])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        path, value = item
        if isinstance(value, (dict, list)):
            stack.append(_children(path, value))
        else:
            yield path, value


def _children(path: str, node: Any) -> Iterator[Tuple[str, Any]]:
    if isinstance(node, dict):
        return ((f"{path}.{k}" if path else str(k), v) for k, v in node.items())
    return ((path, v) for v in node)


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _unlabel(value: str) -> Optional[str]:
    """The value of "md5 44d8..." (None when there is no type label in front)."""
    m = LABELLED.match(value)
    return m.group("value") if m else None


def _labelled(value: Any) -> List[str]:
    """Labelled values in any field (Sysmon `Hashes`: "MD5=...,SHA256=...,IMPHASH=...")."""
    return [v for v in map(_unlabel, _split(value)) if v]


def _values(value: Any) -> List[str]:
    """Strings (and numbers sent as strings) from a field; comma-joined IP lists are split;
    a type label in front ("md5 44d8...") is dropped."""
    return [_unlabel(v) or v for v in _split(value)]


def _split(value: Any) -> List[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str) and v.strip():
            out += (
                [p.strip() for p in v.split(",")]
                if "," in v and " " not in v.strip()
                else [v.strip()]
            )
    return [v for v in out if v]


def structured(doc: Any) -> List[str]:
    """Values of known indicator fields anywhere in the document."""
    out = []
    for path, value in _walk(doc):
        leaf = path.rsplit(".", 1)[-1].lower()
        parent = path.rsplit(".", 2)[-2].lower() if path.count(".") >= 1 else ""
        if leaf in SKIP_KEYS or parent in SKIP_KEYS:
            continue
        if (
            leaf in KNOWN_KEYS
            or (parent == "hash" and leaf in ("md5", "sha1", "sha256"))
            or (parent in ("ip", "domain", "url", "hashes") and leaf == "value")  # OCSF hashes[]
            or (parent in ("question", "questions") and leaf == "name")  # ECS / UDM DNS names
        ):
            out += _values(value)
        elif isinstance(value, str):
            out += _labelled(value)
    return out


def is_command(leaf: str) -> bool:
    name = leaf.lower().replace("_", "").replace("-", "")
    return name.endswith(COMMAND_SUFFIXES) or name in COMMAND_KEYS


def free_text(doc: Any, email_domains: bool = False, extra: Iterable[str] = ()) -> List[str]:
    """Indicators in the free-text fields (and `extra` text), then in command lines and
    scripts; each capped."""
    text = list(extra)
    budget = FREE_TEXT_CAP - sum(map(len, text))
    commands, command_budget = [], COMMAND_TEXT_CAP
    for path, value in _walk(doc):
        if not isinstance(value, str):
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf.lower() in FREE_TEXT_KEYS and budget > 0:
            text.append(value[:budget])
            budget -= len(text[-1])
        elif is_command(leaf) and command_budget > 0:
            commands.append(value[:command_budget])
            command_budget -= len(commands[-1])
    found = extract("\n".join(text), max_chars=FREE_TEXT_CAP, email_domains=email_domains)
    script = DOTNET_NAME.sub(" ", "\n".join(commands))
    found += extract(script, max_chars=COMMAND_TEXT_CAP, email_domains=email_domains)
    return [o.value for o in found]


def is_free_text(key: str) -> bool:
    return key.lower() in FREE_TEXT_KEYS or is_command(key)


# -- per product -------------------------------------------------------------------------------
def _sentinel(doc: Dict[str, Any]) -> List[str]:
    props = _get(doc, "object.properties") or _get(doc, "properties") or {}
    out = []
    for ent in props.get("relatedEntities", []) if isinstance(props, dict) else []:
        if not isinstance(ent, dict):
            continue
        p = ent.get("properties", ent)
        for key in ("address", "url", "domainName", "hostName", "hashValue", "fqdn"):
            out += _values(p.get(key)) if isinstance(p, dict) else []
    return out


def _typed_values(doc: Any) -> List[str]:
    """TheHive observables/artifacts {dataType, data} and OCSF observables {type, value}."""
    out: List[str] = []
    for key in ("observables", "artifacts"):
        node = doc.get(key) if isinstance(doc, dict) else None
        for item in node if isinstance(node, list) else []:
            if not isinstance(item, dict):
                continue
            kind = str(item.get("dataType") or item.get("type") or "").lower()
            if kind in TYPED_VALUE_TYPES:
                out += _values(item.get("data", item.get("value")))
    return out


def _wazuh(doc: Dict[str, Any]) -> Dict[str, Any]:
    return doc.get("all_fields") if isinstance(doc.get("all_fields"), dict) else doc


def _elastic(doc: Dict[str, Any]) -> Any:
    alerts = _get(doc, "context.alerts")
    return alerts if isinstance(alerts, list) and alerts else doc


FORMATS = (
    "auto",
    "elastic",
    "sentinel",
    "splunk",
    "wazuh",
    "qradar",
    "chronicle",
    "crowdstrike",
    "sentinelone",
    "thehive",
    "ocsf",
    "graylog",
    "sumologic",
    "datadog",
    "generic",
)


def detect(doc: Dict[str, Any]) -> str:
    if isinstance(_get(doc, "object.properties.relatedEntities"), list) or isinstance(
        _get(doc, "properties.relatedEntities"), list
    ):
        return "sentinel"
    if isinstance(doc.get("result"), dict) and ("sid" in doc or "search_name" in doc):
        return "splunk"
    if "all_fields" in doc or (
        isinstance(doc.get("rule"), dict) and "agent" in doc and "level" in doc["rule"]
    ):
        return "wazuh"
    if isinstance(_get(doc, "context.alerts"), list) or "kibana" in doc:
        return "elastic"
    if "offense_source" in doc or "offense_type" in doc:
        return "qradar"
    if "collectionElements" in doc:
        return "chronicle"
    if _get(doc, "metadata.eventType") == "DetectionSummaryEvent":
        return "crowdstrike"
    if isinstance(doc.get("threatInfo"), dict) or isinstance(_get(doc, "data.threatInfo"), dict):
        return "sentinelone"
    if doc.get("objectType") in ("alert", "case") or "artifacts" in doc:
        return "thehive"
    if "class_uid" in doc:
        return "ocsf"
    if "event_definition_id" in doc:
        return "graylog"
    if "SearchName" in doc or "SearchQueryUrl" in doc:
        return "sumologic"
    if "alert_id" in doc:
        return "datadog"
    return "generic"


def indicators(fmt: str, doc: Dict[str, Any], email_domains: bool = False) -> Tuple[str, List[str]]:
    """(format used, candidate values: structured fields first, then free text; the domains of
    e-mail addresses in free text only with `email_domains`)."""
    doc, texts = embedded.expand(doc, is_free_text)
    if fmt == "auto":
        fmt = detect(doc)
    body: Any = doc
    values: List[str] = []
    if fmt == "sentinel":
        values += _sentinel(doc)
    elif fmt == "splunk":
        body = doc.get("result", doc)
    elif fmt == "wazuh":
        body = _wazuh(doc)
    elif fmt == "elastic":
        body = _elastic(doc)
    if fmt in ("thehive", "ocsf"):
        values += _typed_values(doc) + _typed_values(doc.get("object") or {})
    values += structured(body)
    values += free_text(body, email_domains, texts)
    return fmt, list(dict.fromkeys(values))


IDS = {  # where each product puts its own alert id
    "qradar": ("id",), "chronicle": ("id",), "crowdstrike": ("event.DetectId", "metadata.offset"),
    "sentinelone": ("threatInfo.threatId", "data.threatInfo.threatId", "id"),
    "thehive": ("object._id", "rootId", "_id"), "ocsf": ("finding_info.uid", "metadata.uid"),
    "graylog": ("event.id",), "datadog": ("id", "alert_id"), "sumologic": ("Id",),
}  # fmt: skip


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _elastic_ids(doc: Dict[str, Any]) -> List[Any]:
    alerts = _get(doc, "context.alerts")
    out = []
    for a in alerts if isinstance(alerts, list) and alerts else [doc]:
        if not isinstance(a, dict):
            return [None]
        out.append(_get(a, "kibana.alert.uuid") or a.get("kibana.alert.uuid"))
    return out


# Objects the sender updates in place keep their id: the update time (or operation) tells one
# notification from the next, so an update is not taken for a repeat.
VERSION = {
    "qradar": ("last_updated_time", "last_persisted_time"),
    "thehive": ("operation", "object._updatedAt", "object.updatedAt", "updatedAt"),
    "sentinelone": ("data.threatInfo.updatedAt", "threatInfo.updatedAt"),
}


def idempotency_key(fmt: str, doc: Dict[str, Any]) -> Optional[str]:
    """The sender's own id for this alert, when the format has one (with what tells an update or
    another result of the same search apart from a repeat)."""
    candidates: Iterable[Any] = ()
    suffix = ""
    if fmt == "splunk":
        # "For each result" alerts post every result under the same sid.
        candidates = [doc.get("sid")]
        suffix = "/" + _digest(doc.get("result"))
    elif fmt == "wazuh":
        candidates = [_wazuh(doc).get("id")]
    elif fmt == "sentinel":
        props = _get(doc, "object.properties") or {}
        name = _get(doc, "object.name") or (
            props.get("incidentNumber") if isinstance(props, dict) else None
        )
        modified = props.get("lastModifiedTimeUtc") if isinstance(props, dict) else None
        candidates = [f"{name}@{modified}" if name else None]
    elif fmt == "elastic":
        ids = _elastic_ids(doc)  # a summary of several alerts is keyed by all of them
        ok = all(isinstance(i, (str, int)) and str(i).strip() for i in ids)
        candidates = (
            [ids[0] if len(ids) == 1 else ("n" + _digest(sorted(map(str, ids))))] if ok else []
        )
    elif fmt in IDS:
        candidates = [_get(doc, path) for path in IDS[fmt]]
        versions = [_get(doc, path) for path in VERSION.get(fmt, ())]
        suffix = "".join(f"@{v}" for v in versions if isinstance(v, (str, int)) and v != "")
    for c in candidates:
        if isinstance(c, bool) or not isinstance(c, (str, int)) or not str(c).strip():
            continue
        key = f"{c}{suffix}"
        if not re.match(r"^[\w.:@/+~-]{1,200}$", key):
            key = "h" + _digest(key)
        return f"{fmt}:{key}"
    return None


def batch_key(fmt: str, docs: List[Dict[str, Any]]) -> Optional[str]:
    """One key for a request body: the alert's own key, or all of them for a batch; None when
    any alert has none (the caller then keys on the body hash)."""
    keys = [idempotency_key(detect(d) if fmt == "auto" else fmt, d) for d in docs]
    if not keys or any(k is None for k in keys):
        return None
    return keys[0] if len(keys) == 1 else "batch:" + _digest(keys)
