"""The `vtconnect` command line, in-process with click's runner and as a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from connectors.cli import main

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
SECRET = "cli-test-secret-key-0123456789abcdef"


@pytest.fixture
def env(emulator_url, tmp_path):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path / "state"}"\n'
        "[privacy]\nallow_documentation_ranges = true\n"
        "[quota]\ntier = 'unlimited'\n"
    )
    return {"VT_API_URL": emulator_url, "VT_API_KEY": SECRET, "VTCONNECT_CONFIG": str(cfg)}


def run(env, *args, input=None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_lookup_json(env):
    r = run(env, "lookup", "--format", "json", EICAR_MD5, "hxxp://example[.]com/", "10.0.0.1")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["verdict"] for x in rows] == ["malicious", "harmless", "skipped"]
    for key in (
        "value",
        "kind",
        "verdict",
        "score",
        "reason",
        "malicious",
        "suspicious",
        "harmless",
        "undetected",
        "link",
        "cached",
    ):
        assert key in rows[0]
    assert rows[0]["kind"] == "md5" and rows[0]["source"] == "emulator"
    assert rows[0]["link"].endswith(rows[0]["vt_id"]) and len(rows[0]["vt_id"]) == 64
    assert rows[1]["normalized"] == "http://example.com/"
    assert "private" in rows[2]["reason"]


def test_second_run_is_cached(env):
    run(env, "lookup", EICAR_MD5)
    r = run(env, "lookup", "--format", "json", EICAR_MD5)
    assert json.loads(r.stdout)[0]["cached"] is True


def test_csv_and_file_input_with_junk(env, tmp_path):
    f = tmp_path / "iocs.txt"
    f.write_bytes(
        b"# comment\n\n"
        + EICAR_MD5.encode()
        + b"\n\xff\xfe\x00binary\n"
        + b"a" * (1 << 20)
        + b"\nexample.org\n"
    )
    r = run(env, "lookup", "--format", "csv", "-f", str(f))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["verdict"] for x in rows] == ["malicious", "skipped", "skipped", "harmless"]
    assert all(x["reason"] for x in rows)


def test_stdin_input(env):
    r = run(env, "lookup", "--format", "json", "-f", "-", input=f"{EICAR_MD5}\nexample.net\n")
    assert [x["verdict"] for x in json.loads(r.stdout)] == ["malicious", "harmless"]


@pytest.mark.parametrize(
    "args",
    [
        ["lookup"],
        ["lookup", "--format", "xml", EICAR_MD5],
        ["lookup", "--type", "colour", EICAR_MD5],
        ["lookup", "-f", "/nonexistent/file"],
        ["lookup", "--deadline", "-1", EICAR_MD5],
    ],
)
def test_usage_errors_exit_2(env, args):
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_bad_configuration_exits_2(env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nmalicious_min = 'x'\n")
    r = CliRunner().invoke(main, ["--config", str(bad), "lookup", EICAR_MD5], env=env)
    assert r.exit_code == 2 and "policy.malicious_min" in r.output


def test_table_marks_emulator_data(env):
    r = run(env, "lookup", EICAR_MD5, "evil[.]example")
    assert r.exit_code == 0
    assert "EMULATOR DATA" in r.stdout


def test_real_process_never_prints_the_key(env):
    """Run the installed console script at the highest verbosity: the key is nowhere."""
    full = dict(os.environ, **env)
    exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
    r = subprocess.run(
        [exe, "-vv", "lookup", "--format", "json", EICAR_MD5, "example.com"],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "DEBUG" in r.stderr  # debug logging really was on
    assert SECRET not in r.stdout and SECRET not in r.stderr
    assert json.loads(r.stdout)[0]["verdict"] == "malicious"


def test_wrong_key_exits_3(tmp_path):
    from connectors.emulator.app import EmulatorConfig
    from connectors.emulator.server import EmulatorThread

    emu = EmulatorThread(EmulatorConfig(accept_any_key=False, keys={"good": "unlimited"}))
    url = emu.start()
    try:
        env = {
            "VT_API_URL": url,
            "VT_API_KEY": "bad-key",
            "VTCONNECT_CONFIG": "",
            "XDG_STATE_HOME": str(tmp_path),
        }
        r = CliRunner().invoke(main, ["lookup", EICAR_MD5], env=env)
        assert r.exit_code == 3, r.output
        assert "rejected" in r.output
    finally:
        emu.stop()


def test_no_key_is_a_clear_error(tmp_path):
    env = {
        "VT_API_KEY": "",
        "VTCONNECT_CONFIG": "",
        "XDG_STATE_HOME": str(tmp_path),
        "VT_API_URL": "http://127.0.0.1:9",
    }
    r = CliRunner().invoke(main, ["lookup", EICAR_MD5], env=env)
    assert r.exit_code == 2 and "VT_API_KEY" in r.output


def test_scan_url_and_file_with_wait(env, tmp_path):
    r = run(env, "scan", "url", "hxxp://example[.]com/new", "--wait", "--timeout", "10")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("analysis u-") and lines[0].endswith(": completed")
    assert lines[1].startswith("verdict  ") and "engines" in lines[1]
    assert lines[2].startswith("link     https://www.virustotal.com/gui/url/")
    f = tmp_path / "sample.bin"
    f.write_bytes(b"vtconnect test file\n")
    r = run(env, "scan", "file", str(f), "--wait", "--timeout", "10", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    import hashlib

    sha256 = hashlib.sha256(f.read_bytes()).hexdigest()
    assert out["status"] == "completed" and out["value"] == sha256
    assert out["verdict"] in ("malicious", "suspicious", "harmless", "undetected")
    assert out["link"].endswith("/gui/file/" + out["value"]) and sum(out["stats"].values()) > 0
    r = run(env, "scan", "url", "http://example.org/queued")
    assert r.exit_code == 0 and "--wait" in r.stdout and r.stdout.startswith("analysis u-")
    r = CliRunner().invoke(main, ["scan", "url", "not a url"], env=env)
    assert r.exit_code == 2


def test_cache_stats_purge_and_quota(env):
    run(env, "lookup", EICAR_MD5, "example.com")
    r = run(env, "cache", "stats")
    assert r.exit_code == 0 and "entries      2 live (harmless 1, malicious 1)" in r.stdout
    assert "verdict log  2 rows" in r.stdout and "{" not in r.stdout  # no Python dict
    stats = json.loads(run(env, "cache", "stats", "--json").stdout)
    assert stats["entries"] == 2 and stats["by_verdict"] == {"harmless": 1, "malicious": 1}
    r = run(env, "cache", "purge")
    assert "removed 0 entries" in r.stdout
    r = run(env, "cache", "purge", "--all")
    assert "removed 2 entries" in r.stdout
    r = run(env, "quota")
    assert r.exit_code == 0 and "tier unlimited" in r.stdout


def test_quota_shows_budget_used(env, tmp_path):
    cfg = tmp_path / "public.toml"
    cfg.write_text(f'[core]\nstate_dir = "{tmp_path / "s2"}"\n[quota]\ntier = "public"\n')
    env = dict(env, VTCONNECT_CONFIG=str(cfg))
    r = run(env, "lookup", "--format", "json", "--deadline", "1", EICAR_MD5, "example.org")
    assert [x["verdict"] for x in json.loads(r.stdout)] == ["malicious", "harmless"]
    r = run(env, "quota")
    assert "used_today: 2" in r.stdout and "left_today: 498" in r.stdout


def test_emulator_command_rejects_bad_options():
    r = CliRunner().invoke(main, ["emulator", "--faults", "{not json"])
    assert r.exit_code == 2 and "not valid JSON" in r.output
    r = CliRunner().invoke(main, ["emulator", "--key", "abc:gold"])
    assert r.exit_code == 2 and "unknown tier" in r.output


@pytest.mark.parametrize(
    "group, options",
    [
        (["taxii", "pull"], ["--into", "--enrich", "--token"]),
        (["taxii", "push"], ["--from", "--all", "--token"]),
        (["webhook", "replay"], []),
        (["splunk", "build"], ["--out"]),
    ],
)
def test_connector_commands_are_registered(group, options):
    r = CliRunner().invoke(main, [*group, "--help"])
    assert r.exit_code == 0, r.output
    for option in options:
        assert option in r.output
