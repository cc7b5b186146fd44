"""Enrichment -> Splunk fields. Every record carries every output field (empty where not
applicable): splunkd drops fields that first appear after the first record of a chunk."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from connectors.core import evidence
from connectors.core.verdict import Enrichment, Verdict

# Output field names without the prefix, in the order they are written.
COMMON = (
    "kind", "id", "verdict", "score", "reason", "malicious", "suspicious", "harmless",
    "undetected", "total", "reputation", "threat_label", "tags", "first_seen", "last_analysis",
    "link", "cached", "error",
)  # fmt: skip
KIND_SPECIFIC = (
    "file_names", "file_type", "file_size", "md5", "sha1", "sha256",  # files
    "categories", "registrar", "creation_date",  # domains (categories also urls)
    "country", "asn", "as_owner", "network",  # IP addresses
    "final_url", "title", "redirection_chain",  # urls
)  # fmt: skip
EVIDENCE = evidence.FIELDS  # detections, votes, threat names, GTI, Sigma/IDS, relationships...
NAMES = COMMON + KIND_SPECIFIC + EVIDENCE
LIST_FIELDS = frozenset(("tags", "file_names", "categories", "redirection_chain")) | (
    evidence.LIST_FIELDS
)
# The fields a report gives; with a remote hub they come from its answer row instead.
FROM_REPORT = (
    "malicious", "suspicious", "harmless", "undetected", "total", "reputation", "threat_label",
    "tags", "first_seen", "last_analysis",
) + KIND_SPECIFIC + EVIDENCE  # fmt: skip
HUB_ROW = "hub_row"  # Enrichment.extra key (vtlookup_support/hub.py)

Value = Any  # str, or a list of str for multivalue fields


def field_names(prefix: str) -> List[str]:
    return [prefix + n for n in NAMES]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def render(enr: Enrichment) -> Dict[str, Value]:
    """Unprefixed field -> value for one enrichment; list fields stay lists."""
    r = enr.report
    out: Dict[str, Value] = dict.fromkeys(NAMES, "")
    out["kind"] = enr.kind
    out["id"] = enr.vt_id
    out["verdict"] = enr.verdict.value
    out["score"] = str(enr.score) if enr.kind else ""
    out["reason"] = enr.reason
    # A value the privacy filter kept from VirusTotal gets no link to it either.
    out["link"] = "" if enr.verdict is Verdict.SKIPPED else enr.link
    out["cached"] = "1" if enr.cached else "0"
    out["error"] = enr.error
    if r is not None:
        stats = r.stats
        for k in ("malicious", "suspicious", "harmless", "undetected"):
            out[k] = str(stats.get(k, 0))
        out["total"] = str(r.total)
        out["reputation"] = str(r.reputation)
        out["threat_label"] = r.threat_label
        out["tags"] = list(r.tags)
        out["first_seen"] = r.first_seen_iso
        out["last_analysis"] = r.last_analysis_iso
        for k, v in r.kind_fields().items():
            if k in out:
                out[k] = [str(x) for x in v] if isinstance(v, (list, tuple)) else _text(v)
        for k, v in evidence.evidence(r).items():
            out[k] = [str(x) for x in v] if isinstance(v, list) else _text(v)
    elif enr.extra.get(HUB_ROW):
        _from_row(out, enr.extra[HUB_ROW])
    return out


def _from_row(out: Dict[str, Value], row: Dict[str, Any]) -> None:
    """The report's fields from a hub's answer row (connectors.core.records: to_dict plus
    `source`, empty when the hub had no report): what render() shows for the same enrichment."""
    if not row.get("source"):
        return
    for k in FROM_REPORT:
        v = row.get(k)
        out[k] = [str(x) for x in v] if isinstance(v, list) else _text(v)


def combine(rendered: Sequence[Dict[str, Value]]) -> Dict[str, Value]:
    """Fields for a record whose input had several values: every field is multivalue, one entry
    per input value in input order; list fields are joined with ", " so positions line up."""
    out: Dict[str, Value] = {}
    for name in NAMES:
        column: List[str] = []
        for one in rendered:
            v = one[name]
            column.append(", ".join(v) if isinstance(v, list) else v)
        out[name] = column
    return out
