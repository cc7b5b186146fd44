"""Confirmed risky indicators into Splunk Enterprise Security's threat intelligence, for ES
before 8.2 (which reads TAXII 1.x only and so cannot poll our TAXII 2.1 feed).

Through ES's Threat Intelligence API, `/services/data/threat_intel/item/<collection>`: ES's
documented way to add, find and update rows programmatically (form field `item`, a JSON
object or list; GET with `item` finds rows by field values; PUT `.../<collection>/<_key>`
updates one). The upload endpoint needs a threatlist input and parses files later; writing
ES's KV collections directly skips ES's own checks and depends on its internal layout.

Idempotent: each indicator is looked up by its value and our threat_key first; a row found is
updated in place, only new ones are added. Best effort: a search never fails for ES.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

SECTION = "es_threat_intel"
ITEM = "/services/data/threat_intel/item/"
# vt_kind -> (ES collection, field), as ES's threat intelligence documentation names them.
TARGETS = {
    "ipv4": ("ip_intel", "ip"), "ipv6": ("ip_intel", "ip"), "domain": ("ip_intel", "domain"),
    "url": ("http_intel", "url"), "md5": ("file_intel", "file_hash"),
    "sha1": ("file_intel", "file_hash"), "sha256": ("file_intel", "file_hash"),
}  # fmt: skip
RANK = {"malicious": 2, "suspicious": 1}
BATCH = 100  # rows per POST
log = logging.getLogger("vtconnect.vtlookup")


@dataclass(frozen=True)
class EsSettings:
    enabled: bool = False
    min_verdict: str = "malicious"
    min_score: int = 0
    threat_key: str = "vtconnect"
    weight: int = 60


def from_conf(conf: Mapping[str, Mapping[str, str]]) -> EsSettings:
    """[es_threat_intel] as settings (config_page.check_ours has refused wrong values)."""
    s = conf.get(SECTION, {})
    d = EsSettings()
    return EsSettings(
        enabled=str(s.get("enabled", "false")).strip().lower() in ("1", "t", "true", "yes", "on"),
        min_verdict=str(s.get("min_verdict") or d.min_verdict).strip().lower(),
        min_score=int(str(s.get("min_score") or d.min_score).strip()),
        threat_key=str(s.get("threat_key") or d.threat_key).strip(),
        weight=int(str(s.get("weight") or d.weight).strip()),
    )


def problems(key: str, value: str) -> Optional[str]:
    """What is wrong with one [es_threat_intel] value, or None."""
    v = value.strip()
    if key == "enabled" and v.lower() not in ("true", "false", "1", "0", "t", "f", "yes", "no"):
        return f"[{SECTION}] enabled must be true or false, not {value!r}"
    if key == "min_verdict" and v.lower() not in RANK:
        return f"[{SECTION}] min_verdict must be malicious or suspicious, not {value!r}"
    if key in ("min_score", "weight"):
        low = 1 if key == "weight" else 0
        if not v.isdigit() or not low <= int(v) <= 100:
            return f"[{SECTION}] {key} must be a whole number from {low} to 100, not {value!r}"
    if key == "threat_key" and (not v or any(c in v for c in "|\"'\\") or len(v) > 100):
        return f"[{SECTION}] threat_key must be 1-100 characters without | \" ' \\"
    return None


def rows(s: EsSettings, risky: List[Dict[str, Any]], now: float) -> Dict[str, List[Dict[str, Any]]]:
    """collection -> ES rows for the risky indicators that pass the minimum verdict and score."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for doc in risky:
        target = TARGETS.get(str(doc.get("kind")))
        verdict = str(doc.get("verdict"))
        if target is None or RANK.get(verdict, 0) < RANK[s.min_verdict]:
            continue
        if int(doc.get("score") or 0) < s.min_score:
            continue
        collection, field = target
        out.setdefault(collection, []).append({
            field: doc["value"], "threat_key": s.threat_key, "weight": s.weight, "time": now,
            "description": f"VirusTotal: {verdict}, score {doc.get('score', 0)}/100"
            + (f" {doc['link']}" if doc.get("link") else ""),
        })  # fmt: skip
    return out


def push(service: Any, s: EsSettings, risky: List[Dict[str, Any]], now: float) -> Optional[str]:
    """Writes the rows; returns one warning for the search when ES did not take them."""
    todo = rows(s, risky, now)
    total = sum(len(v) for v in todo.values())
    if not total:
        return None
    added = updated = 0
    try:
        for collection, items in todo.items():
            new = []
            for item in items:
                key = _existing(service, collection, item, s.threat_key)
                if key is None:
                    new.append(item)
                    continue
                _call(service, "PUT", f"{ITEM}{collection}/{key}", item)
                updated += 1
            for i in range(0, len(new), BATCH):
                _call(service, "POST", ITEM + collection, new[i : i + BATCH])
                added += len(new[i : i + BATCH])
    except _EsRefused as exc:
        log.warning(
            "event=es_intel_failed status=%s added=%d updated=%d", exc.status, added, updated
        )
        why = {404: "its threat intelligence API is not on this search head (ES not installed?)",
               401: "splunkd refused the session",
               403: "the user lacks ES's capability edit_threat_intel_collections"}  # fmt: skip
        return (
            f"vtlookup: {total - added - updated} risky indicator(s) not written to Enterprise "
            f"Security's threat intelligence: {why.get(exc.status, f'HTTP {exc.status}')}"
        )
    log.info("event=es_intel added=%d updated=%d", added, updated)
    return None


class _EsRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _existing(service: Any, collection: str, item: Dict[str, Any], threat_key: str) -> Any:
    """The _key of our row for this indicator, if ES has one."""
    field = next(k for k in item if k not in ("threat_key", "weight", "time", "description"))
    match = {field: item[field], "threat_key": threat_key}
    status, doc = _request(service, "GET", ITEM + collection, match)
    if not isinstance(doc, dict) or "status" not in doc:
        raise _EsRefused(status if status >= 400 else 502)  # not ES's own answer
    found = doc.get("message") if doc.get("status") is True else None
    if isinstance(found, list) and found and isinstance(found[0], dict):
        return found[0].get("_key")
    return None


def _call(service: Any, method: str, path: str, item: Any) -> None:
    status, doc = _request(service, method, path, item)
    if status >= 300 or not isinstance(doc, dict) or doc.get("status") is False:
        raise _EsRefused(status if status >= 300 else 502)


def _request(service: Any, method: str, path: str, item: Any) -> Tuple[int, Any]:
    from splunklib.binding import HTTPError

    try:
        resp = service.request(path, method=method, body={"item": json.dumps(item)})
        status, raw = int(resp.status), resp.body.read()
    except HTTPError as exc:
        status, raw = int(exc.status), exc.body or b""
    except Exception as exc:  # unreachable splunkd: one warning, never a failed search
        log.warning("event=es_intel_error error=%r", exc)
        raise _EsRefused(503) from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None
