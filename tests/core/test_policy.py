import pytest

from connectors.core.config import PolicySettings
from connectors.core.policy import decide
from connectors.core.report import Report
from connectors.core.verdict import Verdict


def report(mal=0, sus=0, harmless=0, undetected=60, kind="file", **kw):
    stats = {"malicious": mal, "suspicious": sus, "harmless": harmless, "undetected": undetected}
    engines = {f"E{i}": "malicious" for i in range(mal)}
    engines.update({f"S{i}": "suspicious" for i in range(sus)})
    return Report(kind=kind, id="x", stats=stats, engines=engines, **kw)


P = PolicySettings()


@pytest.mark.parametrize(
    "r, verdict",
    [
        (report(mal=60, undetected=10), Verdict.MALICIOUS),
        (report(mal=3, undetected=67), Verdict.MALICIOUS),
        (report(mal=2, undetected=68), Verdict.SUSPICIOUS),  # one or two engines never decide alone
        (report(sus=1), Verdict.SUSPICIOUS),
        (report(), Verdict.UNDETECTED),
        (report(harmless=70, undetected=20, kind="domain"), Verdict.HARMLESS),
        (report(trusted_verdict="goodware"), Verdict.HARMLESS),
        (report(mal=0, undetected=0), Verdict.UNDETECTED),
    ],
)
def test_default_policy(r, verdict):
    d = decide(r, P)
    assert d.verdict == verdict
    assert d.reason


def test_scores_sort_like_verdicts():
    order = [
        decide(report(mal=60, undetected=10), P),
        decide(report(mal=3, undetected=67), P),
        decide(report(mal=2, undetected=68), P),
        decide(report(), P),
        decide(report(harmless=70, undetected=0, kind="url"), P),
    ]
    scores = [d.score for d in order]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 100 for s in scores)
    assert order[0].score == 100


def test_percent_threshold_needs_both():
    strict = PolicySettings(malicious_min=3, malicious_percent=20.0)
    assert decide(report(mal=5, undetected=65), strict).verdict == Verdict.SUSPICIOUS
    assert decide(report(mal=15, undetected=55), strict).verdict == Verdict.MALICIOUS


def test_few_engines_cap_at_suspicious():
    r = report(mal=3, undetected=0)
    d = decide(r, P)
    assert d.verdict == Verdict.SUSPICIOUS and "only 3 engines answered" in d.reason


def test_trusted_engine_alone_is_enough():
    r = report(undetected=69)
    r.engines["Kaspersky"] = "malicious"
    r.stats["malicious"] = 1
    assert decide(r, P).verdict == Verdict.SUSPICIOUS
    d = decide(r, PolicySettings(trusted_engines=("Kaspersky",)))
    assert d.verdict == Verdict.MALICIOUS and "Kaspersky" in d.reason


@pytest.mark.parametrize(
    "field, value, switch",
    [
        ("yara_rules", ("SUSP_Packed",), "use_yara"),
        ("sigma", {"high": 2}, "use_sigma"),
        ("ids", {"high": 1}, "use_ids"),
        ("sandbox_malicious", ("Zenbox",), "use_sandbox"),
    ],
)
def test_optional_signals_raise_to_suspicious_only_when_enabled(field, value, switch):
    r = report(**{field: value})
    assert decide(r, P).verdict == Verdict.UNDETECTED
    d = decide(r, PolicySettings(**{switch: True}))
    assert d.verdict == Verdict.SUSPICIOUS and "but" in d.reason


def test_threat_label_in_reason():
    d = decide(report(mal=50, undetected=20, threat_label="trojan.emotet/heodo"), P)
    assert "trojan.emotet/heodo" in d.reason
