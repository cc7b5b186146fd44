"""Turns a VirusTotal report into a verdict, a 0-100 score and the reason in words.

Defaults (PolicySettings): malicious needs at least 3 engines AND at least 3% of the engines that
answered; suspicious needs 1 engine saying malicious or suspicious; fewer than 5 answering engines
never gives more than suspicious; any engine in `trusted_engines` saying malicious is enough for
malicious; a "goodware" trusted verdict or a majority of harmless answers gives harmless.
Scores sit in bands so that they sort like verdicts: malicious 70-100, suspicious 40-69,
undetected 10-20, harmless 0-5, not_found 0.
"""

from __future__ import annotations

from typing import List

from .config import PolicySettings
from .report import Report
from .verdict import Decision, Verdict

NOT_FOUND = Decision(Verdict.NOT_FOUND, 0, "VirusTotal has never seen it")


def decide(report: Report, policy: PolicySettings) -> Decision:
    stats = report.stats
    mal = stats.get("malicious", 0)
    sus = stats.get("suspicious", 0)
    answered = report.total
    share = 100.0 * mal / answered if answered else 0.0
    detail = f"{mal}/{answered} engines say malicious, {sus} suspicious"
    label = f"; threat label {report.threat_label}" if report.threat_label else ""

    trusted = sorted(e for e in policy.trusted_engines if report.engines.get(e) == "malicious")
    if trusted:
        return Decision(
            Verdict.MALICIOUS,
            _malicious_score(mal, sus, answered),
            f"trusted engine {', '.join(trusted)} says malicious ({detail}){label}",
        )

    too_few = answered < policy.min_engines
    if mal >= policy.malicious_min and share >= policy.malicious_percent and not too_few:
        return Decision(
            Verdict.MALICIOUS,
            _malicious_score(mal, sus, answered),
            f"{detail}: at or above the malicious threshold "
            f"({policy.malicious_min} engines and {policy.malicious_percent:g}%){label}",
        )

    flagged = mal + sus
    flagged_share = 100.0 * flagged / answered if answered else 0.0
    if flagged >= max(policy.suspicious_min, 1) and flagged_share >= policy.suspicious_percent:
        why = (
            f"only {answered} engines answered"
            if too_few and mal
            else "below the malicious threshold"
        )
        return Decision(Verdict.SUSPICIOUS, min(69, 40 + 5 * flagged), f"{detail}: {why}{label}")

    signals = _signals(report, policy)
    if signals:
        return Decision(
            Verdict.SUSPICIOUS,
            40 + min(20, 5 * len(signals)),
            f"{detail}, but " + "; ".join(signals) + label,
        )

    if report.trusted_verdict == "goodware":
        return Decision(
            Verdict.HARMLESS, 0, f"{detail}; a trusted software publisher vouches for it"
        )
    harmless = stats.get("harmless", 0)
    if harmless and harmless >= stats.get("undetected", 0):
        return Decision(Verdict.HARMLESS, 5, f"{detail}; {harmless} engines say harmless")
    if answered == 0:
        return Decision(Verdict.UNDETECTED, 10, "no engine has analysed it yet")
    score = 20 if report.reputation < 0 else 10
    return Decision(Verdict.UNDETECTED, score, f"{detail}: no engine detects it")


def _malicious_score(mal: int, sus: int, answered: int) -> int:
    ratio = (mal + 0.5 * sus) / answered if answered else 1.0
    return min(100, 70 + round(30 * min(1.0, ratio / 0.5)))


def _signals(report: Report, policy: PolicySettings) -> List[str]:
    """Optional non-engine signals, each of which can raise a clean result to suspicious."""
    out = []
    if policy.use_yara and report.yara_rules:
        out.append(
            f"{len(report.yara_rules)} crowdsourced YARA rule(s) match ({report.yara_rules[0]})"
        )
    high_sigma = report.sigma.get("critical", 0) + report.sigma.get("high", 0)
    if policy.use_sigma and high_sigma:
        out.append(f"{high_sigma} critical/high Sigma rule hit(s)")
    if policy.use_ids and report.ids.get("high", 0):
        out.append(f"{report.ids['high']} high-severity IDS alert(s)")
    if policy.use_sandbox and report.sandbox_malicious:
        out.append(f"sandbox {', '.join(report.sandbox_malicious[:3])} says malicious")
    return out
