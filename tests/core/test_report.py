import pytest

from connectors.core.report import Report, ReportError, parse_report


def doc(kind="file", **attrs):
    return {"data": {"type": kind, "id": "abc", "attributes": attrs}}


def test_file_report_fields():
    r = parse_report(
        doc(
            last_analysis_stats={"malicious": 5, "undetected": 60, "type-unsupported": 4},
            last_analysis_results={
                "A": {"category": "malicious", "result": "EICAR"},
                "B": {"category": "undetected", "result": None},
            },
            md5="M",
            sha1="S",
            sha256="H",
            names=["a.exe"],
            meaningful_name="b.exe",
            popular_threat_classification={
                "suggested_threat_label": "virus.eicar/test",
                "popular_threat_category": [{"value": "virus", "count": 3}],
            },
            sandbox_verdicts={
                "Zenbox": {"category": "malicious"},
                "C2AE": {"category": "harmless"},
            },
            total_votes={"harmless": 1, "malicious": 9},
            last_analysis_date=1700000000,
        )
    )
    assert r.total == 65 and r.stats["type-unsupported"] == 4 and len(r.stats) == 8
    assert r.engine_results == {"A": "EICAR"}
    assert r.names[0] == "b.exe" and r.md5 == "m"
    assert r.threat_label == "virus.eicar/test" and r.threat_categories == ("virus",)
    assert r.sandbox_malicious == ("Zenbox",)
    assert r.last_analysis_iso == "2023-11-14T22:13:20Z"
    assert Report.from_dict(r.to_dict()) == r


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"data": []},
        {"data": {"type": "file"}},
        {"data": {"type": "analysis", "id": "x", "attributes": {}}},
        {"data": {"type": "file", "id": "x", "attributes": "no"}},
    ],
)
def test_unreadable_answers_raise_report_error(bad):
    with pytest.raises(ReportError):
        parse_report(bad)


def test_garbage_fields_become_empty_values():
    r = parse_report(
        doc(
            "ip_address",
            last_analysis_stats="x",
            asn="AS13335",
            tags={"a": 1},
            reputation="-7",
            total_votes=None,
            last_analysis_results=[1, 2],
        )
    )
    assert r.stats == {
        "harmless": 0,
        "malicious": 0,
        "suspicious": 0,
        "undetected": 0,
        "timeout": 0,
    }
    assert r.asn == 0 and r.tags == () and r.reputation == -7


def test_relationship_descriptors():
    d = doc("domain")
    d["data"]["relationships"] = {
        "resolutions": {"data": [{"type": "resolution", "id": "r1"}]},
        "last_serving_ip_address": {"data": {"type": "ip_address", "id": "1.1.1.1"}},
    }
    r = parse_report(d)
    assert r.relationships["resolutions"] == [{"type": "resolution", "id": "r1"}]
    assert r.relationships["last_serving_ip_address"][0]["id"] == "1.1.1.1"


def _fixture(name):
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parents[1] / "fixtures" / "vt" / name).read_text())


def test_url_threat_names_become_the_threat_label():
    r = parse_report(_fixture("xsoar_url_threat_names.json"))
    assert r.threat_names == ("Mal/HTMLGen-A",) and r.threat_label == "Mal/HTMLGen-A"


def test_evidence_fields_from_a_real_file_object():
    from connectors.core.evidence import evidence

    r = parse_report(_fixture("azul_orcusrat_crowdsourced.json"))
    ev = evidence(r)
    assert len(ev["detections"]) == 20  # bounded; the object has 54
    assert ev["detections"][0] == "AhnLab-V3: Win-Trojan/OrcusRAT.Exp"  # family names first
    assert all(not d.startswith(("Bkav:", "MaxSecure:")) for d in ev["detections"][:20])
    assert ev["sigma_counts"] == ["medium=2"] and ev["ids_counts"] == ["low=4"]
    assert ev["sigma_rules"][0] == "medium: Hidden Executable In NTFS Alternate Data Stream"
    assert ev["sandbox_verdicts"] == ["CAPE Sandbox: malicious", "Zenbox: malicious"]
    assert "OrcusRAT" in ev["sandbox_malware"]
    assert ev["threat_severity"] == "SEVERITY_MEDIUM" and ev["gti_verdict"] == ""
    assert ev["threat_names"] == ["orcusrat", "msil", "orcus"]


def test_relationships_and_last_modified_without_analysis_date():
    from connectors.core.evidence import evidence

    r = parse_report(_fixture("xsoar_domain_no_analysis_date.json"))
    assert r.last_analysis_iso == "" and r.first_seen_iso == ""
    ev = evidence(r)
    assert ev["last_modified"] == "2021-02-08T23:54:21Z"
    assert ev["relationships"] == [
        "siblings: domain test1.pw",
        "siblings: domain test2.pw",
        "subdomains: domain test3.pw",
    ]


def test_reports_never_share_their_containers():
    # parse_report fills each record from one template of the defaults: every dict it holds
    # must still be its own, or filling one report would change the next.
    a, b = parse_report(doc()), parse_report(doc("url"))
    for name, value in vars(a).items():
        if isinstance(value, dict):
            assert value is not getattr(b, name), name
            assert value is not Report(kind="file", id="x").__dict__[name], name


def test_to_dict_omits_defaults_and_round_trips():
    r = parse_report(
        doc(
            last_analysis_stats={"malicious": 1},
            last_analysis_results={"A": {"category": "malicious", "result": "X"}},
            names=["a.exe"],
            reputation=0,
        )
    )
    d = r.to_dict()
    assert "reputation" not in d and "yara_rules" not in d and "url" not in d
    assert d["kind"] == "file" and d["names"] == ("a.exe",)
    assert Report.from_dict(d) == r
    # a field set to a falsy value that is not its default is kept (cached as it was)
    r.names = []
    assert r.to_dict()["names"] == []
