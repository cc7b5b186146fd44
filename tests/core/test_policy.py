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
    "field, value, switch, default_on",
    [
        ("yara_rules", ("SUSP_Packed",), "use_yara", False),  # many rules are generic
        ("sigma", {"high": 2}, "use_sigma", True),
        ("ids", {"high": 1}, "use_ids", True),
        ("sandbox_malicious", ("Zenbox",), "use_sandbox", True),
        ("reputation", -41, "use_reputation", True),
        ("severity", "SEVERITY_HIGH", "use_virustotal_verdicts", True),
        ("gti_verdict", "VERDICT_SUSPICIOUS", "use_virustotal_verdicts", True),
    ],
)
def test_signals_raise_a_clean_value_to_suspicious_each_switchable(
    field, value, switch, default_on
):
    r = report(**{field: value})
    off = decide(r, PolicySettings(**{switch: False}))
    on = decide(r, PolicySettings(**{switch: True}))
    assert off.verdict == Verdict.UNDETECTED
    assert on.verdict == Verdict.SUSPICIOUS and on.reason.endswith("0 suspicious")
    assert decide(r, P).verdict == (on.verdict if default_on else off.verdict)


def test_threat_label_in_reason():
    d = decide(report(mal=50, undetected=20, threat_label="trojan.emotet/heodo"), P)
    assert "trojan.emotet/heodo" in d.reason


def named(results, undetected=65, **kw):
    """A report whose flagging engines gave these detection names."""
    r = report(mal=len(results), undetected=undetected, **kw)
    r.engines = {e: "malicious" for e in results}
    r.engine_results = dict(results)
    return r


HEURISTIC = {  # the four detections of a real signed Chocolatey shim (tests/fixtures/vt)
    "Bkav": "W32.AIDetectNet.01",
    "Trapmine": "malicious.moderate.ml.score",
    "Gridinsoft": "Ransom.Win32.Sabsik.dd!n",
    "MaxSecure": "Trojan.Malware.300983.susgen",
}


def test_heuristic_names_alone_do_not_make_malicious():
    d = decide(named(HEURISTIC), P)
    assert d.verdict == Verdict.SUSPICIOUS
    assert d.reason.startswith("all 4 names are heuristic/ML/generic (weighted 0.5)")
    # The same four engines naming families are malicious: the names decide, not the count.
    families = {e: "Win32/Emotet.A" for e in HEURISTIC}
    assert decide(named(families), P).verdict == Verdict.SUSPICIOUS  # engine weights 0.5 each
    assert decide(named(families), PolicySettings(engine_weights=())).verdict == Verdict.MALICIOUS


def test_weights_are_configurable():
    full = PolicySettings(weak_names=(), engine_weights=())
    assert decide(named(HEURISTIC), full).verdict == Verdict.MALICIOUS
    assert (
        decide(named(HEURISTIC), PolicySettings(weak_name_weight=1.0, engine_weights=())).verdict
        == Verdict.MALICIOUS
    )
    with pytest.raises(ValueError, match="engine=weight"):
        PolicySettings(engine_weights=("Bkav",))


def test_known_distributor_is_not_malicious_on_one_generic_hit():
    r = named({"MaxSecure": "Trojan.Malware.300983.susgen"}, undetected=74, distributors=("Linux",))
    d = decide(r, P)
    assert d.verdict == Verdict.HARMLESS and "known distributor Linux ships it" in d.reason
    # without VirusTotal's distributor data the lone hit is suspicious
    assert decide(r, PolicySettings(use_virustotal_verdicts=False)).verdict == Verdict.SUSPICIOUS
    # a distributor does not excuse family detections above the threshold
    strong = named({f"E{i}": "Trojan.Emotet" for i in range(10)}, distributors=("Linux",))
    assert decide(strong, P).verdict == Verdict.MALICIOUS


def test_verified_trusted_signer_vouches_revoked_does_not():
    ok = named({}, signer="Microsoft Corporation", signature_verified="Signed")
    assert decide(ok, P).verdict == Verdict.HARMLESS
    revoked = named(
        {},
        signer="Microsoft Corporation",
        signature_verified="A certificate was explicitly revoked",
    )
    assert decide(revoked, P).verdict == Verdict.UNDETECTED
    unknown = named({}, signer="Some Vendor Ltd", signature_verified="Signed")
    assert decide(unknown, P).verdict == Verdict.UNDETECTED
    assert (
        decide(unknown, PolicySettings(trusted_publishers=("some vendor ltd",))).verdict
        == Verdict.HARMLESS
    )


def test_gti_malicious_is_never_undetected():
    r = named({}, gti_verdict="VERDICT_MALICIOUS", gti_score=100)
    d = decide(r, P)
    assert d.verdict == Verdict.MALICIOUS and d.reason.startswith("VirusTotal's GTI assessment")
    goodware = named({}, gti_verdict="VERDICT_MALICIOUS", gti_score=100, trusted_verdict="goodware")
    d = decide(goodware, P)
    assert d.verdict == Verdict.SUSPICIOUS and "conflicting" in d.reason
    assert decide(r, PolicySettings(use_virustotal_verdicts=False)).verdict == Verdict.UNDETECTED
    assert decide(named({}, gti_verdict="VERDICT_BENIGN"), P).verdict == Verdict.HARMLESS


def test_preferred_engines_count_threshold():
    r = named({"Kaspersky": "Trojan.Win32.Agent", "ESET-NOD32": "Win32/Agent"}, undetected=300)
    assert decide(r, P).verdict == Verdict.SUSPICIOUS  # 2 of 302 engines is below 3%
    pref = PolicySettings(
        preferred_engines=("Kaspersky", "ESET-NOD32", "Microsoft"), preferred_min=2
    )
    d = decide(r, pref)
    assert d.verdict == Verdict.MALICIOUS and d.reason.startswith("2 preferred engines")
    three = PolicySettings(preferred_engines=pref.preferred_engines, preferred_min=3)
    assert decide(r, three).verdict == Verdict.SUSPICIOUS


def test_reason_lists_deciding_signals_shortest_first():
    r = report(ids={"high": 47}, reputation=-41)
    d = decide(r, P)
    assert d.reason == (
        "community reputation -41; 47 high-severity IDS alert(s); "
        "0/60 engines say malicious, 0 suspicious"
    )
