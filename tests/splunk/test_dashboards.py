"""The dashboards read what analysts can read (the app's KV collections, never index=_internal),
every panel's search refers to macros, lookups, fields and tokens that exist, and the command
really writes the documents those panels read (through the harness and the fake splunkd)."""

from __future__ import annotations

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

import pytest

from . import harness
from .conftest import API_KEY, base_python, conf_for
from .harness import ANALYST_KEY, USER_KEY, FakeSplunkd, run_search
from .test_access import call

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
VIEWS = ("vtconnect_overview", "vtconnect_indicator", "vtconnect_correlation")


def conf(app_dir: Path, name: str) -> Dict[str, Dict[str, str]]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(app_dir / "default" / name, encoding="utf-8")
    return {s: dict(cp[s]) for s in cp.sections()}


def view(app_dir: Path, name: str) -> ET.Element:
    return ET.parse(app_dir / "default" / "data" / "ui" / "views" / f"{name}.xml").getroot()


def expand(query: str, macros: Dict[str, Dict[str, str]]) -> str:
    for _ in range(10):
        m = re.search(r"`([^`(]+)(?:\(([^`]*)\))?`", query)
        if not m:
            return query
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2) else []
        name = f"{m.group(1)}({len(args)})" if args else m.group(1)
        assert name in macros, f"macro {name} is not defined"
        body = macros[name]["definition"]
        for arg_name, value in zip(macros[name].get("args", "").split(","), args):
            body = body.replace(f"${arg_name.strip()}$", value)
        query = query[: m.start()] + body + query[m.end() :]
    raise AssertionError("macros nest too deep")


def check_fields(query: str, lookups: Dict[str, List[str]]) -> None:
    """After `inputlookup X`, every field a panel aggregates, groups or shows exists: in the
    lookup's fields_list or made by an earlier eval/stats/rename."""
    known: Set[str] = set()
    tracking = False  # only after an inputlookup are the fields known
    for segment in [s.strip() for s in query.split("|") if s.strip()]:
        cmd, _, rest = segment.partition(" ")
        if cmd == "inputlookup":
            assert rest.strip() in lookups, f"lookup {rest.strip()} is not defined"
            known, tracking = set(lookups[rest.strip()]) | {"_time"}, True
        elif not tracking:
            continue
        elif cmd == "eval":
            known |= set(re.findall(r"(?:^|,)\s*(\w+)\s*=(?!=)", rest))
        elif cmd == "addinfo":
            known |= {"info_min_time", "info_max_time", "info_sid", "info_search_time"}
        elif cmd in ("stats", "timechart"):
            body, _, by = rest.partition(" by ")
            for field in re.findall(r"\w+\((\w+)\)", body):
                assert field in known, f"{cmd} uses unknown field {field}: {query}"
            for field in by.split():
                assert field in known, f"{cmd} groups by unknown field {field}: {query}"
            made = set(re.findall(r"\bas (\w+)", body)) | set(by.split())
            known = made | ({"_time"} if cmd == "timechart" else set())
            if cmd == "stats" and not re.search(r"\bas \w+", body):
                known |= {"count"}
        elif cmd in ("table", "fields", "sort"):
            names = [n for n in re.split(r"[\s,]+", rest) if n and n not in ("-", "+")]
            for n in names:
                n = n.lstrip("-+")
                assert "*" in n or n in known or n.isdigit(), f"{cmd} names unknown {n}: {query}"


@pytest.mark.parametrize("name", VIEWS)
def test_every_panel_search_refers_to_what_exists(built_app, name):
    app = built_app.app_dir
    macros = conf(app, "macros.conf")
    transforms = conf(app, "transforms.conf")
    collections = conf(app, "collections.conf")
    lookups = {}
    for lookup, t in transforms.items():
        assert t["collection"] in collections
        declared = {k[6:] for k in collections[t["collection"]] if k.startswith("field.")}
        fields = [f.strip() for f in t["fields_list"].split(",")]
        assert set(fields) - {"_key"} <= declared
        lookups[lookup] = fields
    root = view(app, name)
    tokens = {i.get("token") for i in root.iter("input")} | {
        s.get("token") for s in root.iter("set")
    }
    queries = [q.text or "" for q in root.iter("query")]
    assert queries
    for q in queries:
        full = expand(q, macros)
        assert "index=_internal" not in full and "_internal" not in full
        for tok in re.findall(r"\$([\w.]+)(?:\|\w)?\$", full):
            assert tok.split(".")[0] in tokens, f"token ${tok}$ is set by nothing in {name}"
        check_fields(full, lookups)


def test_overview_reads_no_internal_index(built_app):
    text = (built_app.app_dir / "default/data/ui/views/vtconnect_overview.xml").read_text()
    assert "vtconnect_log" not in text and "_internal" not in text


def test_the_command_writes_what_the_panels_read(built_app, emulator_url, splunk_home):
    transforms = conf(built_app.app_dir, "transforms.conf")
    with FakeSplunkd(
        conf=conf_for(built_app, emulator_url), passwords={"api_key": API_KEY},
        app_dir=built_app.app_dir, python=base_python(),
    ) as sd:  # fmt: skip
        values = [EICAR_MD5, "ops-1.example.com", "10.0.0.9"]
        chunk = [{"dest": v} for v in values] * 2
        for _ in range(2):  # the second search is answered from kept answers
            _, replies, rc = run_search(
                built_app.app_dir, sd, ["field=dest"], [chunk, chunk], python=base_python(),
                env=harness.command_env(splunk_home), session_key=ANALYST_KEY,
            )  # fmt: skip
            assert rc == 0
        stats = list(sd.kv["vtconnect_stats"].values())
        risky = list(sd.kv["vtconnect_risky"].values())
        # Analysts read them; users without the app's role do not.
        find = "storage/collections/data/vtconnect_stats/batch_find"
        assert call(sd, find, ANALYST_KEY, "POST", b'[{"query": {}}]')[0] == 200
        assert call(sd, find, USER_KEY, "POST", b'[{"query": {}}]')[0] == 403
    assert len(stats) == 1  # both searches had the same sid in the harness: one document each
    doc = stats[0]
    fields = {f.strip() for f in transforms["vtconnect_stats_lookup"]["fields_list"].split(",")}
    assert set(doc) <= fields
    assert doc["records"] == 12 and doc["unique"] == 3 and doc["skipped"] == 1
    assert doc["cache_hits"] == 2 and doc["api_calls"] == 0 and doc["user"] == "analyst"
    assert doc["per_day"] == 0  # tier unlimited: no local budget
    assert [(r["kind"], r["value"], r["verdict"]) for r in risky] == [
        ("md5", EICAR_MD5, "malicious")
    ]
    fields = {f.strip() for f in transforms["vtconnect_risky_lookup"]["fields_list"].split(",")}
    assert set(risky[0]) <= fields and risky[0]["field"] == "dest"
    assert risky[0]["link"].startswith("https://www.virustotal.com/gui/file/")


# -- correlation ----------------------------------------------------------------------------
CORRELATION = (
    "vtconnect - correlation (indexes)", "vtconnect - correlation (CIM Web)",
    "vtconnect - correlation (CIM Network Traffic)", "vtconnect - correlation (CIM Endpoint)",
)  # fmt: skip


def made_by(query: str) -> Set[str]:
    """Fields a query creates (rename/eval/stats as, stats by)."""
    out = set(re.findall(r"\bas (\w+)", query)) | set(re.findall(r"\bby (\w+)\s*(?:\||$)", query))
    for segment in query.split("|"):
        cmd, _, rest = segment.strip().partition(" ")
        if cmd == "eval":
            out |= set(re.findall(r"(?:^|,)\s*(\w+)\s*=(?!=)", rest))
    return out


@pytest.mark.parametrize("name", CORRELATION)
def test_correlation_searches_save_what_the_matches_collection_holds(built_app, name):
    app = built_app.app_dir
    saved = conf(app, "savedsearches.conf")[name]
    assert saved["enableSched"] == "0"  # on once an admin has set the macros
    assert saved["cron_schedule"] == "*/15 * * * *" and saved["schedule_priority"] == "lower"
    assert saved["alert.track"] == "1" and saved["quantity"] == "0"
    full = expand(saved["search"], conf(app, "macros.conf"))
    assert re.search(r"\| vtlookup field=indicator max_lookups=\d+ \|", full)  # a quota share
    table = re.search(r"\| table ([\w ]+) \| outputlookup vtconnect_matches_lookup", full)
    assert table, full
    fields = conf(app, "transforms.conf")["vtconnect_matches_lookup"]["fields_list"]
    assert table.group(1).split() == [f.strip() for f in fields.split(",")]
    vt_fields = {"vt_kind", "vt_verdict", "vt_score", "vt_reason", "vt_threat_label", "vt_link"}
    missing = set(table.group(1).split()) - made_by(full) - {"indicator"}
    assert missing == set(), missing
    assert vt_fields <= set(re.findall(r"\bvt_\w+", full))


def test_correlation_looks_up_distinct_indicators_within_its_budget(
    built_app, splunkd, splunk_home, emulator_url
):
    from .test_vtlookup import api_calls

    # What `vtconnect_correlation_distinct` hands vtlookup: one row per indicator.
    rows = [
        {"indicator": f"corr-{i}.example.com", "events": str(10 + i), "index": "proxy"}
        for i in range(5)
    ]
    budget = re.search(
        r"^definition = (\d+)$",
        (built_app.app_dir / "default" / "macros.conf")
        .read_text()
        .split("[vtconnect_correlation_budget]")[1],
        re.M,
    )
    assert budget and int(budget.group(1)) > 0
    before = api_calls(emulator_url)
    _, replies, rc = run_search(
        built_app.app_dir, splunkd, ["field=indicator", "max_lookups=2"], [rows],
        python=base_python(), env=harness.command_env(splunk_home),
    )  # fmt: skip
    assert rc == 0
    assert api_calls(emulator_url) - before <= 2
    verdicts = [r["vt_verdict"] for r in replies[0].records]
    assert verdicts.count("quota") == 3
    assert [r["events"] for r in replies[0].records] == [str(10 + i) for i in range(5)]
