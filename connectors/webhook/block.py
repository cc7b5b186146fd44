"""The `enrichment` block the receiver adds to an alert: one item per value found, the hashes
of one file grouped, an overall verdict and a one-line summary."""

from __future__ import annotations

from typing import Any, Dict, List

from connectors.core import evidence
from connectors.core.verdict import Enrichment, Verdict

ORDER = [Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNDETECTED, Verdict.HARMLESS,
         Verdict.NOT_FOUND]  # fmt: skip


def _source(r: Enrichment) -> str:
    """Who answered: "virustotal", "emulator" (test data), or "" (not looked up)."""
    if r.report is None:
        return ""
    return "emulator" if r.report.emulated else "virustotal"


FILE_KINDS = ("md5", "sha1", "sha256")


def same_files(results: List[Enrichment]) -> List[int]:
    """For each result, the index of the first result that is the same file (by the hashes
    VirusTotal's report lists for it: MD5, SHA-1 and SHA-256 of one file are one file), or its
    own index."""
    first: Dict[str, int] = {}
    out = []
    for i, r in enumerate(results):
        names = {r.normalized} if r.kind in FILE_KINDS and r.normalized else set()
        if r.kind in FILE_KINDS and r.report is not None:
            names |= {h for h in (r.report.md5, r.report.sha1, r.report.sha256) if h}
        known = [first[n] for n in names if n in first]
        out.append(min(known) if known else i)
        for n in names:
            first.setdefault(n, out[-1])
    return out


def block(fmt: str, results: List[Enrichment]) -> Dict[str, Any]:
    """The `enrichment` block added to an alert: every value found, with the canonical value
    looked up (`normalized`); the hashes of one file name each other (`aliases` on the first,
    `same_as` on the others) and count once."""
    items = []
    for r in results:
        d = r.to_dict()
        pending = r.verdict == Verdict.ERROR and r.error == "deadline"
        items.append(
            {
                k: d[k]
                for k in (
                    "value",
                    "normalized",
                    "kind",
                    "verdict",
                    "score",
                    "reason",
                    "malicious",
                    "suspicious",
                    "harmless",
                    "undetected",
                    "link",
                    "threat_label",
                )
            }
            | {"pending": pending, "source": _source(r),
               "evidence": {k: d[k] for k in evidence.FIELDS}}  # fmt: skip
        )
    groups = same_files(results)
    for i, g in enumerate(groups):
        if g != i:
            items[i]["same_as"] = items[g]["value"]
            items[g].setdefault("aliases", []).append(items[i]["value"])
    distinct = [r for i, r in enumerate(results) if groups[i] == i]
    known = [r.verdict for r in results if r.verdict in ORDER]
    overall = min(known, key=ORDER.index).value if known else "none"
    risky = [r for r in distinct if r.is_risky]
    summary = f"{len(risky)} of {len(distinct)} indicators risky" + (
        ": " + ", ".join(f"{r.normalized} {r.verdict.value} ({r.score})" for r in risky[:5])
        if risky
        else ""
    )
    return {
        "format": fmt,
        "verdict": overall,
        "emulator": any(i["source"] == "emulator" for i in items),  # test data, not VirusTotal
        "is_risky": bool(risky),
        "summary": summary,
        "observables": items,
        "indicators": len(distinct),  # a file sent as MD5 and SHA-256 counts once
        "pending": sum(i["pending"] for i in items),
    }
