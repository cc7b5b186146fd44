"""What the core says about one observable: the verdict, a score and the reason in words."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .evidence import evidence


class Verdict(str, enum.Enum):
    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    HARMLESS = "harmless"
    UNDETECTED = "undetected"
    NOT_FOUND = "not_found"
    SKIPPED = "skipped"  # we chose not to ask: private address, internal name, invalid value
    QUOTA = "quota"  # the API budget was spent before this one could be asked
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


# Verdicts that carry VirusTotal's opinion and may be cached.
CACHEABLE = frozenset(
    {Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.HARMLESS, Verdict.UNDETECTED, Verdict.NOT_FOUND}
)
RISKY = frozenset({Verdict.MALICIOUS, Verdict.SUSPICIOUS})


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one report."""

    verdict: Verdict
    score: int  # 0-100
    reason: str


@dataclass
class Enrichment:
    """One input value and everything the core learned about it."""

    value: str  # the input as given
    kind: str  # observable kind ("md5", "url", ...) or "" when it could not be classified
    verdict: Verdict
    score: int = 0
    reason: str = ""
    normalized: str = ""  # canonical value the lookup used
    vt_id: str = ""  # VirusTotal object id (sha256 for files once known)
    link: str = ""  # VirusTotal GUI link
    report: Optional[Any] = None  # connectors.core.report.Report when VirusTotal answered
    cached: bool = False
    stale: bool = False  # report older than rescan_after_days; a reanalysis was requested
    error: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_risky(self) -> bool:
        return self.verdict in RISKY

    def to_dict(self) -> Dict[str, Any]:
        """Flat JSON-friendly form used by the CLI, the webhook and tests."""
        r = self.report
        out: Dict[str, Any] = {
            "value": self.value,
            "kind": self.kind,
            "normalized": self.normalized,
            "vt_id": self.vt_id,
            "verdict": self.verdict.value,
            "score": self.score,
            "reason": self.reason,
            "malicious": r.stats.get("malicious", 0) if r else None,
            "suspicious": r.stats.get("suspicious", 0) if r else None,
            "harmless": r.stats.get("harmless", 0) if r else None,
            "undetected": r.stats.get("undetected", 0) if r else None,
            "total": r.total if r else None,
            "reputation": r.reputation if r else None,
            "threat_label": r.threat_label if r else "",
            "tags": list(r.tags) if r else [],
            "first_seen": r.first_seen_iso if r else "",
            "last_analysis": r.last_analysis_iso if r else "",
            "link": self.link,
            "cached": self.cached,
            "stale": self.stale,
            "error": self.error,
        }
        out.update(evidence(r))
        if r is not None:
            out.update(r.kind_fields())
        return out
