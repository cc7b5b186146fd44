"""Turns a VirusTotal report into a verdict, a 0-100 score and the reason in words.

In order (PolicySettings holds every threshold and switch; README "Verdicts" explains each):
1. a trusted engine saying malicious, or `preferred_min` of the preferred engines: malicious;
2. the engines, weighted (weights.py: heuristic/ML/generic names count for a quarter): malicious
   needs `malicious_min` weighted engines AND `malicious_percent` of the engines that answered,
   and at least `min_engines` answers; a file that VirusTotal says is shipped by a known
   distributor, vouched for by a trusted publisher or signed by a trusted signer is never made
   malicious by heuristic names alone;
3. VirusTotal's own verdicts: a GTI assessment of malicious is malicious (suspicious when a
   vendor vouches for the file), never undetected; GTI suspicious or threat severity HIGH raise to
   suspicious;
4. any engine flagging it, high IDS alerts, critical/high Sigma rules, a sandbox saying
   malicious, a community reputation <= -bad_reputation (and YARA, off by default): suspicious;
5. vouched for (goodware, known distributor, trusted signer) or a harmless majority: harmless.
Scores sit in bands that sort like verdicts: malicious 70-100, suspicious 40-69,
undetected 10-20, harmless 0-5, not_found 0. The reason lists the deciding signals, shortest
first, then the engine counts.
"""

from __future__ import annotations

from typing import List

from .config import PolicySettings
from .report import Report
from .verdict import Decision, Verdict
from .weights import weighted as _weighted
from .weights import weights_for

NOT_FOUND = Decision(Verdict.NOT_FOUND, 0, "VirusTotal has never seen it")
GTI_MALICIOUS, GTI_SUSPICIOUS, GTI_BENIGN = (
    "VERDICT_MALICIOUS",
    "VERDICT_SUSPICIOUS",
    "VERDICT_BENIGN",
)
HIGH_SEVERITIES = ("SEVERITY_HIGH", "SEVERITY_CRITICAL")


def _reason(signals: List[str], detail: str, label: str) -> str:
    return "; ".join(sorted(signals, key=len) + [detail]) + label


def decide(report: Report, policy: PolicySettings) -> Decision:
    stats = report.stats
    mal = stats.get("malicious", 0)
    sus = stats.get("suspicious", 0)
    answered = report.total
    detail = f"{mal}/{answered} engines say malicious, {sus} suspicious"
    label = f"; threat label {report.threat_label}" if report.threat_label else ""

    engines = report.engines
    trusted = (
        sorted(e for e in policy.trusted_engines if engines.get(e) == "malicious")
        if policy.trusted_engines
        else None
    )
    if trusted:
        why = [f"trusted engine {', '.join(trusted)} says malicious"]
        return Decision(
            Verdict.MALICIOUS, _malicious_score(mal, sus, answered), _reason(why, detail, label)
        )
    preferred = (
        sorted(e for e in policy.preferred_engines if engines.get(e) == "malicious")
        if policy.preferred_engines
        else ()
    )
    if preferred and len(preferred) >= max(1, policy.preferred_min):
        why = [f"{len(preferred)} preferred engines say malicious ({', '.join(preferred)})"]
        return Decision(
            Verdict.MALICIOUS, _malicious_score(mal, sus, answered), _reason(why, detail, label)
        )

    weighted, all_weak = _weighted(report, weights_for(policy))
    n_flagging = len(report.engines)
    vouch = _vouched(report, policy)
    use_vt = policy.use_virustotal_verdicts
    share = 100.0 * weighted / answered if answered else 0.0
    too_few = answered < policy.min_engines
    weak_note = ""
    if all_weak:
        what = "the only detection name is" if n_flagging == 1 else f"all {n_flagging} names are"
        weak_note = f"{what} heuristic/ML/generic (weighted {weighted:g})"

    engines_malicious = (
        weighted >= policy.malicious_min and share >= policy.malicious_percent and not too_few
    )
    if engines_malicious and not (vouch and all_weak):
        why = [f"weighted {weighted:g} at or above the malicious threshold "
               f"({policy.malicious_min} engines and {policy.malicious_percent:g}%)"]  # fmt: skip
        return Decision(
            Verdict.MALICIOUS,
            _malicious_score(weighted, sus, answered),
            _reason(why, detail, label),
        )
    gti_word = report.gti_verdict[8:].lower()
    gti = f"VirusTotal's GTI assessment says {gti_word} (score {report.gti_score})"
    if use_vt and report.gti_verdict == GTI_MALICIOUS:
        if not vouch:
            return Decision(
                Verdict.MALICIOUS,
                max(70, min(100, report.gti_score)),
                _reason([gti], detail, label),
            )
        why = [gti, f"conflicting: {vouch}"]
        return Decision(Verdict.SUSPICIOUS, 60, _reason(why, detail, label))

    flagged = mal + sus
    flagged_share = 100.0 * flagged / answered if answered else 0.0
    engines_flag = (
        flagged >= max(policy.suspicious_min, 1) and flagged_share >= policy.suspicious_percent
    )
    if engines_flag and vouch and all_weak:
        return Decision(Verdict.HARMLESS, 5, _reason([vouch, weak_note], detail, label))
    signals = _signals(report, policy)
    if engines_flag:
        why = [
            weak_note
            or (
                f"only {answered} engines answered"
                if too_few and mal
                else "below the malicious threshold"
            )
        ]
        score = min(69, 40 + round(5 * (weighted + sus)))
        return Decision(Verdict.SUSPICIOUS, score, _reason(why + signals, detail, label))
    if signals:
        return Decision(
            Verdict.SUSPICIOUS, 40 + min(20, 5 * len(signals)), _reason(signals, detail, label)
        )

    if vouch:
        return Decision(Verdict.HARMLESS, 0, _reason([vouch], detail, label))
    if use_vt and report.gti_verdict == GTI_BENIGN:
        return Decision(Verdict.HARMLESS, 0, _reason([gti], detail, label))
    harmless = stats.get("harmless", 0)
    if harmless and harmless >= stats.get("undetected", 0):
        return Decision(Verdict.HARMLESS, 5, f"{detail}; {harmless} engines say harmless{label}")
    if answered == 0:
        return Decision(Verdict.UNDETECTED, 10, "no engine has analysed it yet")
    score = 20 if report.reputation < 0 else 10
    return Decision(Verdict.UNDETECTED, score, f"{detail}: no engine detects it{label}")


def _malicious_score(mal: float, sus: int, answered: int) -> int:
    ratio = (mal + 0.5 * sus) / answered if answered else 1.0
    return min(100, 70 + round(30 * min(1.0, ratio / 0.5)))


def _vouched(report: Report, policy: PolicySettings) -> str:
    """Why VirusTotal's own data says a vendor stands behind this file ("" if nothing does)."""
    if report.trusted_verdict == "goodware":
        return "a trusted software publisher vouches for it"
    if not policy.use_virustotal_verdicts:
        return ""
    if report.distributors:
        return f"known distributor {', '.join(report.distributors[:3])} ships it"
    if report.signer and report.signature_verified == "Signed":
        known = {p.lower() for p in policy.trusted_publishers}
        if report.signer.lower() in known:
            return f"signed by {report.signer} (verified)"
    return ""


def _signals(report: Report, policy: PolicySettings) -> List[str]:
    """Non-engine signals, each of which raises a clean-looking result to suspicious."""
    out = []
    if policy.use_virustotal_verdicts:
        if report.gti_verdict == GTI_SUSPICIOUS:
            out.append(f"VirusTotal's GTI assessment says suspicious (score {report.gti_score})")
        if report.severity in HIGH_SEVERITIES:
            out.append(f"VirusTotal threat severity {report.severity[9:].lower()}")
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
    if policy.use_reputation and report.reputation <= -policy.bad_reputation:
        out.append(f"community reputation {report.reputation}")
    return out
