"""The configuration page's endpoint (vtconnect/settings): vtlookup.conf read and written
through (fake) splunkd, every value checked with the command's own parser, the wrong ones
named; settings and cache survive installing a newer build over the app."""

from __future__ import annotations

import configparser
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from . import harness
from .conftest import API_KEY, base_python, load_build
from .harness import ANALYST_KEY, SESSION_KEY, FakeSplunkd, run_search
from .test_access import call

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"


def copy_app(src: Path, dest: Path) -> Path:
    """A writable copy of the built app (lib/ linked: it is large and never written)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("lib"))
    (dest / "lib").symlink_to(src / "lib")
    return dest


@pytest.fixture
def app_dir(built_app, tmp_path):
    return copy_app(built_app.app_dir, tmp_path / "apps" / "vtconnect")


@pytest.fixture
def page(app_dir):
    with FakeSplunkd(
        conf=None, passwords={"api_key": API_KEY}, app_dir=app_dir, python=base_python()
    ) as sd:
        yield sd


def settings_of(sd, token=SESSION_KEY):
    status, doc = call(sd, "vtconnect/settings", token)
    assert status == 200, doc
    return doc


def post(sd, changes, token=SESSION_KEY):
    return call(sd, "vtconnect/settings", token, "POST", json.dumps(changes).encode())


def local_conf(app_dir: Path):
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read(app_dir / "local" / "vtlookup.conf", encoding="utf-8")
    return {s: dict(cp[s]) for s in cp.sections()}


def test_tabs_show_every_setting_once_with_its_help(page, app_dir):
    doc = settings_of(page)
    assert [t["name"] for t in doc["tabs"]] == [
        "Account", "Proxy", "Quota", "Privacy and lists", "Verdict policy", "Remote hub",
        "Logging", "Enterprise Security",
    ]  # fmt: skip
    shown = [(f["section"], f["key"]) for t in doc["tabs"] for f in t["fields"]]
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read(app_dir / "default" / "vtlookup.conf", encoding="utf-8")
    every = [(s, k) for s in cp.sections() for k in cp[s]]
    assert sorted(shown) == sorted(every)  # each default key on exactly one tab
    assert all(f["help"] and f["source"] == "default" for t in doc["tabs"] for f in t["fields"])
    assert doc["errors"] == [] and doc["api_key_stored"] is True
    assert doc["effective"]["quota"]["per_minute"] == "4"  # public tier, derived by the core
    assert doc["effective"]["quota"]["per_day"] == "500"
    assert API_KEY not in json.dumps(doc)


def test_saved_values_land_in_local_and_change_the_effective_settings(page, app_dir):
    status, doc = post(page, {"quota": {"tier": "premium", "per_day": "20000"}})
    assert status == 200, doc
    assert local_conf(app_dir)["quota"] == {"tier": "premium", "per_day": "20000"}
    assert doc["effective"]["quota"]["per_day"] == "20000"
    assert doc["effective"]["quota"]["per_minute"] == "1000"
    quota = {f["key"]: f for f in doc["tabs"][2]["fields"]}
    assert quota["tier"]["source"] == "local" and quota["per_minute"]["source"] == "default"


def test_wrong_values_are_named_and_nothing_is_saved(page, app_dir):
    status, doc = post(
        page,
        {
            "policy": {"malicious_min": "lots"},
            "quota": {"tier": "gold", "per_day": "100"},
            "command": {"deadline": "0"},
            "virustotal": {"proxy": "http://user:secret@proxy:3128"},
        },
    )
    assert status == 400
    assert doc["error"] == "nothing saved: 4 value(s) wrong"
    named = {(e["section"], e["key"]): e["message"] for e in doc["errors"]}
    assert set(named) == {
        ("policy", "malicious_min"), ("quota", "tier"), ("command", "deadline"),
        ("virustotal", "proxy"),
    }  # fmt: skip
    assert "must be a number, not 'lots'" in named[("policy", "malicious_min")]
    assert "public" in named[("quota", "tier")]
    assert "1 to 86400" in named[("command", "deadline")]
    assert "must look like http://host:port" in named[("virustotal", "proxy")]
    assert "secret" not in json.dumps(doc)  # a proxy password is never echoed
    assert not (app_dir / "local" / "vtlookup.conf").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"policy": {"colour": "blue"}},
        {"nosuch": {"a": "b"}},
        ["policy"],
        {"policy": "x"},
        {"default": {"api_url": "http://evil.example"}},
        {"policy": {"malicious_min": [1]}},
    ],
)
def test_unknown_or_malformed_changes_are_refused(page, app_dir, body):
    status, doc = post(page, body)
    assert status == 400 and doc["error"].startswith("nothing saved")
    assert not (app_dir / "local" / "vtlookup.conf").exists()


def test_only_admins_save(page, app_dir):
    assert settings_of(page, ANALYST_KEY)["errors"] == []  # reading is fine
    status, doc = post(page, {"quota": {"tier": "premium"}}, ANALYST_KEY)
    assert status == 403 and "admin" in doc["error"]
    assert not (app_dir / "local" / "vtlookup.conf").exists()


def test_the_command_uses_what_the_page_saved(page, app_dir, emulator_url, splunk_home):
    status, doc = post(
        page,
        {
            "virustotal": {"api_url": emulator_url},
            "quota": {"tier": "unlimited"},
            "privacy": {"internal_suffixes": ".corp, .example.net"},
            "logging": {"max_risky_lines": "0"},
        },
    )
    assert status == 200, doc
    _, replies, rc = search(app_dir, page, splunk_home, ["a.example.net", EICAR_MD5])
    assert rc == 0
    verdicts = {r["dest"]: r["vt_verdict"] for r in replies[0].records}
    assert verdicts == {"a.example.net": "skipped", EICAR_MD5: "malicious"}
    log = (splunk_home / "var/log/splunk/vtlookup.log").read_text()
    assert "event=summary" in log and "event=risky" not in log
    # A value the page would refuse stops the command with the same message.
    page._write_conf("logging", {"level": "LOUD"})
    info, replies, rc = search(app_dir, page, splunk_home, ["x.example.com"])
    assert rc == 1 and "[logging] level must be one of DEBUG" in info.messages[0][1]


def test_the_remote_hub_tab_sets_the_url_and_says_whether_a_token_is_stored(page, app_dir):
    doc = settings_of(page)
    tab = next(t for t in doc["tabs"] if t["name"] == "Remote hub")
    assert [(f["section"], f["key"]) for f in tab["fields"]] == [("remote", "url")]
    assert doc["remote_token_stored"] is False
    status, doc = post(page, {"remote": {"url": "https://user:pw@hub.example.net"}})
    assert status == 400 and [(e["section"], e["key"]) for e in doc["errors"]] == [
        ("remote", "url")
    ]
    assert not (app_dir / "local" / "vtlookup.conf").exists()
    status, doc = post(page, {"remote": {"url": "https://hub.example.net:8443"}})
    assert status == 200, doc
    assert local_conf(app_dir)["remote"] == {"url": "https://hub.example.net:8443"}
    page.passwords["remote_token"] = "t0ken"
    doc = settings_of(page)
    assert doc["remote_token_stored"] is True and "t0ken" not in json.dumps(doc)


def search(app_dir, sd, home, values, token=SESSION_KEY):
    return run_search(
        app_dir, sd, ["field=dest"], [[{"dest": v} for v in values]], python=base_python(),
        env=harness.command_env(home), session_key=token,
    )  # fmt: skip


def test_every_setting_is_in_the_spec(app_dir):
    import sys

    sys.path.insert(0, str(app_dir / "bin"))
    try:
        from vtlookup_support import config_page
    finally:
        sys.path.remove(str(app_dir / "bin"))
    spec = config_page.read_spec(str(app_dir / "README" / "vtlookup.conf.spec"))
    defaults = config_page.read_conf_file(str(app_dir / "default" / "vtlookup.conf"))
    missing = [(s, k) for s, keys in defaults.items() for k in keys if not spec.get((s, k))]
    assert missing == []


# -- upgrade ---------------------------------------------------------------------------------
def newer_build(tarball: Path, dest: Path) -> Path:
    """The same app as version 0.1.1, build 2: what a later `vtconnect splunk build` makes."""
    out = dest / tarball.name.replace("0.1.0", "0.1.1")
    with tarfile.open(tarball) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name in ("vtconnect/default/app.conf", "vtconnect/app.manifest"):
                data = data.replace(b"0.1.0", b"0.1.1").replace(b"build = 1", b"build = 2")
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return out


def install(tarball: Path, apps: Path) -> Path:
    """What `splunk install app <tarball> -update 1` does to an app: its files are replaced,
    local/ and metadata/local.meta stay."""
    app = apps / "vtconnect"
    if app.exists():
        for p in app.iterdir():
            if p.name == "local":
                continue
            if p.name == "metadata":
                for f in p.iterdir():
                    if f.name != "local.meta":
                        f.unlink()
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return load_build().extract(tarball, apps)


def test_upgrade_keeps_settings_and_cache(built_app, tmp_path, emulator_url, splunk_home):
    apps = tmp_path / "apps"
    app = install(built_app.tarball, apps)
    with FakeSplunkd(
        conf=None, passwords={"api_key": API_KEY}, app_dir=app, python=base_python()
    ) as sd:
        status, doc = post(
            sd, {"virustotal": {"api_url": emulator_url}, "quota": {"tier": "unlimited"}}
        )
        assert status == 200, doc
        values = [EICAR_MD5, "upgrade-1.example.com", "upgrade-2.example.org"]
        _, first, rc = search(app, sd, splunk_home, values)
        assert rc == 0 and {r["vt_cached"] for r in first[0].records} == {"0"}
        kept = dict(sd.kv["vtconnect_cache"])
        local_before = (app / "local" / "vtlookup.conf").read_text()
        state = splunk_home / "var" / "lib" / "splunk" / "vtconnect"
        state_files = sorted(p.name for p in state.iterdir())

        app = install(newer_build(built_app.tarball, tmp_path), apps)
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.read(app / "default" / "app.conf", encoding="utf-8")
        assert cp["launcher"]["version"] == "0.1.1"  # really the newer build
        assert (app / "local" / "vtlookup.conf").read_text() == local_before
        assert settings_of(sd)["effective"]["virustotal"]["api_url"] == emulator_url
        assert sorted(p.name for p in state.iterdir()) == state_files  # outside the app
        assert not any(app.rglob("*.sqlite")) and not any(app.rglob("*.db"))
        # The newer command answers from the cache the older one filled: no VirusTotal call.
        _, second, rc = search(app, sd, splunk_home, values)
        assert rc == 0
        assert {r["vt_cached"] for r in second[0].records} == {"1"}
        assert [r["vt_verdict"] for r in second[0].records] == [
            r["vt_verdict"] for r in first[0].records
        ]
        # The documents are intact; only the output columns are re-rendered for the new
        # version (the app version is part of the settings fingerprint).
        after = sd.kv["vtconnect_cache"]
        assert {k: _no_columns(d) for k, d in after.items()} == {
            k: _no_columns(d) for k, d in kept.items()
        }
        read = [f"file:{EICAR_MD5}", "domain:upgrade-1.example.com", "domain:upgrade-2.example.org"]
        assert all(after[k]["columns_stamp"] != kept[k]["columns_stamp"] for k in read)


def _no_columns(doc):
    return {k: v for k, v in doc.items() if k not in ("columns", "columns_stamp")}
