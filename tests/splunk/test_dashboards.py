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
VIEWS = ("vtconnect_overview", "vtconnect_indicator")


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
