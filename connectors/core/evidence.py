"""What VirusTotal says behind a verdict, as flat fields every output shares (CLI json/csv, the
webhook block, Splunk `vt_*` fields, STIX notes). Lists are bounded: at most DETECTIONS_CAP
flagging engines (most trusted first), report.RULES_CAP Sigma/IDS rules (most severe first),
RELATIONSHIPS_CAP related objects; file names (kind fields) up to report.NAMES_CAP."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .report import SEVERITIES, Report
from .weights import detections

DETECTIONS_CAP = 20
RELATIONSHIPS_CAP = 40

# Field -> value for "no report" (every output pre-sets every field).
EMPTY: Dict[str, Any] = {
    "detections": [],  # "Engine: detection name", most trusted first
    "votes_malicious": None,
    "votes_harmless": None,
    "threat_categories": [],  # popular threat categories (files)
    "threat_names": [],  # popular threat names (files) or VirusTotal's threat_names (URLs)
    "threat_severity": "",  # e.g. SEVERITY_HIGH
    "threat_severity_description": "",
    "gti_verdict": "",  # e.g. VERDICT_MALICIOUS, when the object carries a GTI assessment
    "gti_score": None,
    "yara_rules": [],
    "sigma_counts": [],  # "high=2", most severe first, non-zero only
    "sigma_rules": [],  # "high: <rule title>"
    "ids_counts": [],
    "ids_rules": [],  # "high: <alert message>"
    "sandbox_verdicts": [],  # "Sandbox: category"
    "sandbox_malware": [],
    "known_distributors": [],
    "signer": "",
    "signature_verified": "",
    "relationships": [],  # "contacted_domains: domain example.com"
    "last_modified": "",  # ISO 8601 UTC; the date older domains/IPs have instead of an analysis
}
FIELDS = tuple(EMPTY)
LIST_FIELDS = frozenset(k for k, v in EMPTY.items() if isinstance(v, list))


def _counts(counts: Dict[str, int]) -> List[str]:
    order = list(SEVERITIES) + sorted(set(counts) - set(SEVERITIES))
    return [f"{k}={counts[k]}" for k in order if counts.get(k)]


def evidence(r: Optional[Report]) -> Dict[str, Any]:
    if r is None:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in EMPTY.items()}
    dets = detections(r)[:DETECTIONS_CAP]
    rels = [
        f"{name}: {item['type']} {item['id']}"
        for name, items in sorted(r.relationships.items())
        for item in items
    ]
    return {
        "detections": [f"{e}: {n or c}" for e, c, n, _ in dets],
        "votes_malicious": r.votes_malicious,
        "votes_harmless": r.votes_harmless,
        "threat_categories": list(r.threat_categories),
        "threat_names": list(r.threat_names),
        "threat_severity": r.severity,
        "threat_severity_description": r.severity_description,
        "gti_verdict": r.gti_verdict,
        "gti_score": r.gti_score if r.gti_verdict else None,
        "yara_rules": list(r.yara_rules),
        "sigma_counts": _counts(r.sigma),
        "sigma_rules": list(r.sigma_rules),
        "ids_counts": _counts(r.ids),
        "ids_rules": list(r.ids_rules),
        "sandbox_verdicts": [f"{k}: {v}" for k, v in sorted(r.sandbox_verdicts.items())],
        "sandbox_malware": list(r.sandbox_names),
        "known_distributors": list(r.distributors),
        "signer": r.signer,
        "signature_verified": r.signature_verified,
        "relationships": rels[:RELATIONSHIPS_CAP],
        "last_modified": r.last_modified_iso,
    }
