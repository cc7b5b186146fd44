"""The [lists] section: rules, precedence, configuration errors, and the enricher answering
listed values without a call, a cache hit or a governor slot (against the emulator)."""

from __future__ import annotations

import json
from typing import Optional

import aiohttp
import pytest
from click.testing import CliRunner

from connectors.cli import main
from connectors.core import config
from connectors.core.config import ConfigError, ListsSettings
from connectors.core.enricher import Enricher
from connectors.core.lists import Lists
from connectors.core.observable import parse
from connectors.core.verdict import Verdict

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

LISTS = ListsSettings(
    ignore=(
        ".example.org",
        "*.cdn.example.net",
        "partner.example.com",
        "10.0.0.0/8",
        "2001:db8:aa::/48",
        "198.51.100.7",
        "http://sinkhole.example.info/",
    ),
    force_harmless=(
        "8.8.8.8",
        "203.0.113.0/24",
        "harmless.example.com",
        ".fp.example.com",
        EICAR_MD5,
    ),
    force_malicious=("evil.fp.example.com", "203.0.113.66", "http://harmless.example.com/bad"),
)


def rule_for(value: str, lists: ListsSettings = LISTS, kind: Optional[str] = None):  # type: ignore[no-untyped-def]
    rule = Lists(lists).match(parse(value, kind))
    return None if rule is None else (rule.list, rule.entry)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.org", ("ignore", ".example.org")),  # a suffix covers the domain itself
        ("www.Example.ORG.", ("ignore", ".example.org")),
        ("a.b.example.org", ("ignore", ".example.org")),
        ("notexample.org", None),
        ("img.cdn.example.net", ("ignore", "*.cdn.example.net")),
        ("partner.example.com", ("ignore", "partner.example.com")),
        ("www.partner.example.com", None),  # a plain name is that name only
        ("10.20.30.40", ("ignore", "10.0.0.0/8")),
        ("::ffff:10.1.1.1", ("ignore", "10.0.0.0/8")),  # in any spelling
        ("2001:db8:aa:1::5", ("ignore", "2001:db8:aa::/48")),
        ("2001:db8:ab::5", None),
        ("198.51.100.7", ("ignore", "198.51.100.7")),
        ("http://sinkhole.example.info", ("ignore", "http://sinkhole.example.info/")),
        # The ignore list covers every URL on an ignored host.
        ("https://www.example.org/login?x=1", ("ignore", ".example.org")),
        ("http://admin:pw@partner.example.com/", ("ignore", "partner.example.com")),
        ("http://10.9.9.9:8080/x", ("ignore", "10.0.0.0/8")),
        ("http://[2001:db8:aa::1]/", ("ignore", "2001:db8:aa::/48")),
        ("8.8.8.8", ("force_harmless", "8.8.8.8")),
        ("203.0.113.5", ("force_harmless", "203.0.113.0/24")),
        ("harmless.example.com", ("force_harmless", "harmless.example.com")),
        (EICAR_MD5.upper(), ("force_harmless", EICAR_MD5)),
        # Most specific wins: an exact value before a network, a longer suffix before a shorter.
        ("203.0.113.66", ("force_malicious", "203.0.113.66")),
        ("evil.fp.example.com", ("force_malicious", "evil.fp.example.com")),
        ("x.evil.fp.example.com", ("force_harmless", ".fp.example.com")),
        ("http://harmless.example.com/bad", ("force_malicious", "http://harmless.example.com/bad")),
        # Forced verdicts decide only for the values they name, not for URLs on a host.
        ("http://harmless.example.com/other", None),
        ("http://8.8.8.8/x", None),
        ("http://203.0.113.5/", None),
        ("example.com", None),
        (EICAR_SHA256, None),  # hashes match as listed; the publisher also tries a file's aliases
    ],
)
def test_rules(value: str, expected: Optional[tuple]) -> None:
    assert rule_for(value) == expected


def test_file_names_and_internal_names_can_be_listed() -> None:
    lists = ListsSettings(ignore=("corp.sh", "printer.corp", ".intranet"))
    assert rule_for("corp.sh", lists, "domain") == ("ignore", "corp.sh")
    assert Lists(lists).match(parse("http://corp.sh/x")) is not None


def test_empty_lists_match_nothing() -> None:
    lists = Lists(ListsSettings())
    assert not lists
    assert lists.match(parse("example.org")) is None


def test_match_value_tries_a_files_other_hashes() -> None:
    from connectors.core.report import Report

    report = Report.from_dict(
        {"kind": "file", "id": EICAR_SHA256, "sha256": EICAR_SHA256, "md5": EICAR_MD5}
    )
    rule = Lists(LISTS).match_value("sha256", EICAR_SHA256, report)
    assert rule is not None and rule.list == "force_harmless"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"ignore": ["10.0.0.1/8"]}, "lists.ignore: bad network '10.0.0.1/8'"),
        ({"ignore": ["10.0.0.0/33"]}, "lists.ignore: bad network '10.0.0.0/33'"),
        ({"force_harmless": ["fe80::/129"]}, "lists.force_harmless: bad network"),
        ({"ignore": [".bad_name.com"]}, "lists.ignore: bad suffix '.bad_name.com'"),
        ({"ignore": ["*."]}, "lists.ignore: bad suffix '*.'"),
        ({"force_malicious": ["not a value"]}, "lists.force_malicious: 'not a value' is not"),
        ({"ignore": ["javascript://x"]}, "lists.ignore: 'javascript://x' is not"),
        ({"ignore": [" "]}, "lists.ignore: empty entry"),
        ({"ignore": "example.org"}, "lists.ignore must be a list of strings"),
        ({"ignore": [1]}, "lists.ignore must be a list of strings"),
        ({"allow": ["x"]}, "unknown key lists.allow"),
        (
            {"ignore": ["Example.org"], "force_harmless": ["example.org"]},
            "'example.org' is in both ignore and force_harmless",
        ),
        (
            {"ignore": ["10.0.0.0/8"], "force_malicious": ["10.0.0.0/8"]},
            "in both ignore and force_malicious",
        ),
    ],
)
def test_bad_entries_are_config_errors_naming_the_entry(doc: dict, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config.from_mapping({"lists": doc}, env={})
    assert words in str(exc.value)


def test_lists_load_from_the_settings() -> None:
    s = config.from_mapping({"lists": {"ignore": [".example.org"]}}, env={})
    assert s.lists.ignore == (".example.org",)
    assert config.from_mapping({}, env={}).lists == ListsSettings()


# --- end to end: no call, no cache hit, no governor slot -------------------------------------


async def counters(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(url + "/_emulator/counters") as r:
        return await r.json()


async def test_listed_values_cost_nothing_and_say_why(emulator_url, tmp_path):
    doc = {
        "lists": {
            "ignore": [".example.org", "10.0.0.0/8"],
            "force_harmless": ["8.8.8.8"],
            "force_malicious": ["http://harmless.example.com/bad"],
        },
        "quota": {"tier": "public"},
    }
    s = config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))
    enricher = Enricher(s, connector="test")
    before = (await counters(emulator_url))["requests"]
    values = [
        "www.example.org",
        "https://a.example.org/x",
        "8.8.8.8",
        "HTTP://harmless.example.com/bad",
    ]
    try:
        first = await enricher.enrich(values)
        again = await enricher.enrich(values, use_cache=False)  # no memo, still no call
        stats = enricher.cache.stats()
        quota = enricher.governor.status()
    finally:
        await enricher.aclose()
        enricher.close()
    assert (await counters(emulator_url))["requests"] == before
    assert [r.verdict for r in first] == [
        Verdict.SKIPPED,
        Verdict.SKIPPED,
        Verdict.HARMLESS,
        Verdict.MALICIOUS,
    ]
    assert [r.verdict for r in again] == [r.verdict for r in first]
    assert "[lists] ignore entry '.example.org'" in first[0].reason
    assert "never looked up or published" in first[1].reason
    assert "forced harmless" in first[2].reason and first[2].score == 0
    assert "forced malicious" in first[3].reason and first[3].score == 100
    assert first[3].normalized == "http://harmless.example.com/bad"
    assert stats["hits_total"] == 0 and stats["misses_total"] == 0 and stats["log_rows"] == 0
    assert quota["used_today"] == 0


# --- CLI -------------------------------------------------------------------------------------


def write_config(tmp_path, emulator_url: str, lists: dict) -> str:
    lines = [
        "[virustotal]",
        f'api_url = "{emulator_url}"',
        'api_key = "demo-key"',
        "[quota]",
        'tier = "unlimited"',
        "[core]",
        f'state_dir = "{tmp_path}"',
        "[lists]",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in lists.items()]
    path = tmp_path / "vtconnect.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env={"VT_API_KEY": "", "VT_API_URL": ""})


def test_cli_lists_check(tmp_path, emulator_url):
    cfg = write_config(
        tmp_path, emulator_url, {"ignore": [".example.org"], "force_harmless": ["8.8.8.8"]}
    )
    r = run("--config", cfg, "lists", "check", "https://WWW.example.org/x")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == (
        "https://www.example.org/x: skipped: [lists] ignore entry '.example.org': "
        "on the ignore list, never looked up or published"
    )
    r = run("--config", cfg, "lists", "check", "8.8.8.8")
    assert r.exit_code == 0 and "force_harmless entry '8.8.8.8'" in r.output
    r = run("--config", cfg, "lists", "check", "example.com")
    assert r.exit_code == 1 and r.output.strip() == "example.com: no [lists] rule matches"
    r = run("--config", cfg, "lists", "check", "not a value")
    assert r.exit_code == 2 and "is not an indicator" in r.output
    bad = write_config(tmp_path, emulator_url, {"ignore": ["10.0.0.1/8"]})
    r = run("--config", bad, "lists", "check", "8.8.8.8")
    assert r.exit_code == 2 and "lists.ignore: bad network '10.0.0.1/8'" in r.output
    assert "Traceback" not in r.output


def test_cli_lookup_answers_listed_values_without_a_call(tmp_path, emulator_url):
    import asyncio

    cfg = write_config(tmp_path, emulator_url, {"ignore": [".example.org"]})
    before = asyncio.run(counters(emulator_url))["requests"]
    r = run("--config", cfg, "lookup", "--format", "json", "www.example.org")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["verdict"] == "skipped" and "[lists] ignore" in row["reason"]
    assert asyncio.run(counters(emulator_url))["requests"] == before


@pytest.mark.parametrize(
    "name", ["invoice.zip", "README.md", "setup.py", "run.sh", "backup.zip/data.sql"]
)
def test_cli_lookup_skips_bare_file_names_unless_a_kind_is_given(tmp_path, emulator_url, name):
    import asyncio

    cfg = write_config(tmp_path, emulator_url, {})
    before = asyncio.run(counters(emulator_url))["requests"]
    r = run("--config", cfg, "lookup", "--format", "json", name)
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["verdict"] == "skipped" and "looks like a file name" in row["reason"]
    assert asyncio.run(counters(emulator_url))["requests"] == before
    kind = "url" if "/" in name else "domain"
    r = run("--config", cfg, "lookup", "--format", "json", "--type", kind, name)
    (row,) = json.loads(r.output)
    assert row["verdict"] != "skipped", row
    assert asyncio.run(counters(emulator_url))["requests"] == before + 1


@pytest.mark.parametrize("emails", [False, True])
def test_cli_extract_skips_email_domains_unless_asked(tmp_path, emulator_url, emails):
    cfg = write_config(tmp_path, emulator_url, {})
    with open(cfg, "a") as fh:  # [privacy] after [lists] is fine in TOML
        fh.write(f"[privacy]\nextract_email_domains = {'true' if emails else 'false'}\n")
    text = "mail for alice@corp.example.com about evil.example.net"
    r = run("--config", cfg, "lookup", "--extract", "--format", "json", text)
    assert r.exit_code == 0, r.output
    values = {row["value"] for row in json.loads(r.output)}
    assert values == ({"corp.example.com", "evil.example.net"} if emails else {"evil.example.net"})
