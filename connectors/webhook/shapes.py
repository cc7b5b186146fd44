"""Output shapes a source can ask for (`output` in its config, or `?shape=` per request):
`vtconnect` (the alert plus an `enrichment` block), `elastic` (ECS `threat.enrichments`),
`sentinel` (an incident comment body), `stix` (a STIX 2.1 bundle of the risky indicators)."""

from __future__ import annotations

import html
import time
from typing import Any, Dict, List

from connectors.core import evidence, stix
from connectors.core.verdict import Enrichment

SHAPES = ("vtconnect", "elastic", "sentinel", "stix")
ECS_TYPE = {"md5": "file", "sha1": "file", "sha256": "file", "url": "url",
            "domain": "domain-name", "ipv4": "ipv4-addr", "ipv6": "ipv6-addr"}  # fmt: skip


def _confidence(score: int) -> str:
    return "High" if score >= 70 else "Medium" if score >= 40 else "Low" if score else "None"


def elastic(results: List[Enrichment]) -> List[Dict[str, Any]]:
    """ECS threat.enrichments entries, one per risky indicator."""
    out = []
    for r in results:
        if not r.is_risky:
            continue
        ind: Dict[str, Any] = {
            "type": ECS_TYPE[r.kind],
            "provider": "VirusTotal",
            "reference": r.link,
            "confidence": _confidence(r.score),
            "description": r.reason,
            "marking": {"tlp": "GREEN"},
        }
        if r.kind in ("ipv4", "ipv6"):
            ind["ip"] = r.normalized
        elif r.kind == "url":
            ind["url"] = {"full": r.normalized}
        elif r.kind == "domain":
            ind["url"] = {"domain": r.normalized}
        else:
            ind["file"] = {"hash": {r.kind: r.normalized}}
        out.append({"indicator": ind, "matched": {"atomic": r.value, "type": "vtconnect"}})
    return out


def _threat(r: Enrichment, engines: int = 3) -> str:
    """The threat label and the first (most trusted) detection names, for people."""
    if r.report is None:
        return ""
    dets = evidence.evidence(r.report)["detections"]
    return "; ".join(([r.report.threat_label] if r.report.threat_label else []) + dets[:engines])


def sentinel_comment(results: List[Enrichment]) -> str:
    """HTML for a Sentinel incident comment (the Logic App posts it as the message)."""
    rows = "".join(
        f"<tr><td>{html.escape(r.normalized)}</td><td>{r.verdict.value}</td><td>{r.score}</td>"
        f"<td>{html.escape(_threat(r))}</td>"
        f'<td><a href="{html.escape(r.link)}">VirusTotal</a></td></tr>'
        for r in results
    )
    risky = sum(r.is_risky for r in results)
    return (
        f"<p><b>VirusTotal</b>: {risky} of {len(results)} indicators risky</p>"
        f"<table><tr><th>indicator</th><th>verdict</th><th>score</th><th>threat</th><th></th></tr>"
        f"{rows}</table>"
    )


def shape(
    name: str, alert: Dict[str, Any], enrichment: Dict[str, Any], results: List[Enrichment]
) -> Dict[str, Any]:
    if name == "elastic":
        threat = dict(alert.get("threat") or {}) if isinstance(alert.get("threat"), dict) else {}
        old = threat.get("enrichments")  # the sender's, kept whatever its shape
        old = old if isinstance(old, list) else [] if old is None else [old]
        threat["enrichments"] = old + elastic(results)
        return {**alert, "threat": threat, "enrichment": enrichment}
    if name == "sentinel":
        return {
            **alert,
            "enrichment": enrichment,
            "comment": {"properties": {"message": sentinel_comment(results)}},
        }
    if name == "stix":
        return stix.bundle(stix.objects_for(results, time.time()))
    return {**alert, "enrichment": enrichment}
