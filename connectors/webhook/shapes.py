"""Output shapes a source can ask for (`output` in its config, or `?shape=` per request):
`vtconnect` (the alert plus an `enrichment` block), `elastic` (ECS `threat.enrichments`),
`sentinel` (an incident comment body), `stix` (a STIX 2.1 bundle of the risky indicators)."""

from __future__ import annotations

import html
import time
from typing import Any, Dict, List, Tuple

from connectors.core import evidence, stix
from connectors.core.verdict import Enrichment

SHAPES = ("vtconnect", "elastic", "sentinel", "stix")
ECS_TYPE = {"md5": "file", "sha1": "file", "sha256": "file", "url": "url",
            "domain": "domain-name", "ipv4": "ipv4-addr", "ipv6": "ipv6-addr"}  # fmt: skip


EMULATOR_PROVIDER = "vtconnect emulator (test data, not VirusTotal)"


def _emulated(r: Enrichment) -> bool:
    return r.report is not None and r.report.emulated


def _confidence(score: int) -> str:
    return "High" if score >= 70 else "Medium" if score >= 40 else "Low" if score else "None"


FILE_KINDS = ("md5", "sha1", "sha256")


def _hashes(r: Enrichment) -> Dict[str, str]:
    """kind -> hash for a file result: the value sent and the hashes VirusTotal's report lists."""
    if r.kind not in FILE_KINDS:
        return {}
    out = {r.kind: r.normalized} if r.normalized else {}
    if r.report is not None and r.report.kind == "file":
        out.update({k: h for k, h in (("md5", r.report.md5), ("sha1", r.report.sha1),
                                      ("sha256", r.report.sha256)) if h})  # fmt: skip
    return out


def one_per_file(results: List[Enrichment]) -> List[Tuple[Enrichment, Dict[str, str], List[str]]]:
    """(result, the file's hashes, the values sent for it) with the MD5, SHA-1 and SHA-256 of one
    file folded into the first of them (an alert that names a file twice shows it once)."""
    out: List[Tuple[Enrichment, Dict[str, str], List[str]]] = []
    where: Dict[str, int] = {}
    for r in results:
        hashes = _hashes(r)
        known = [where[h] for h in hashes.values() if h in where]
        if known:
            first = min(known)
            out[first][1].update({k: v for k, v in hashes.items() if k not in out[first][1]})
            out[first][2].append(r.normalized)
        else:
            first = len(out)
            out.append((r, dict(hashes), [r.normalized]))
        for h in hashes.values():
            where.setdefault(h, first)
    return out


def elastic(results: List[Enrichment]) -> List[Dict[str, Any]]:
    """ECS threat.enrichments entries, one per risky indicator (one per file, with every hash
    of it that is known)."""
    out = []
    for r, hashes, _ in one_per_file(results):
        if not r.is_risky:
            continue
        ind: Dict[str, Any] = {
            "type": ECS_TYPE[r.kind],
            "provider": EMULATOR_PROVIDER if _emulated(r) else "VirusTotal",
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
            ind["file"] = {"hash": hashes}
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
    files = one_per_file(results)  # a file sent as MD5 and SHA-256 is one row
    rows = "".join(
        f"<tr><td>{html.escape(' = '.join(sent))}</td><td>{r.verdict.value}</td>"
        f"<td>{r.score}</td><td>{html.escape(_threat(r))}</td>"
        f'<td><a href="{html.escape(r.link)}">VirusTotal</a></td></tr>'
        for r, _, sent in files
    )
    risky = sum(r.is_risky for r, _, _ in files)
    source = (
        "vtconnect emulator</b> (test data, not VirusTotal)"
        if any(_emulated(r) for r in results)
        else "VirusTotal</b>"
    )
    return (
        f"<p><b>{source}: {risky} of {len(files)} indicators risky</p>"
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
