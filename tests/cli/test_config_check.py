"""`vtconnect init` writes a starter file that `vtconnect config check` accepts; check validates
every part the way `serve` would and prints the effective configuration with secrets masked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

EXE = str(Path(sys.executable).with_name("vtconnect"))


def run(tmp_path, *args, env_extra=None):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path), **(env_extra or {}))
    env.pop("VTCONNECT_CONFIG", None)
    env.pop("VT_API_KEY", None)
    env.update(env_extra or {})
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=60,
                          cwd=str(tmp_path), stdin=subprocess.DEVNULL)  # fmt: skip


def test_init_then_check(tmp_path):
    cfg = tmp_path / "vtconnect.toml"
    r = run(tmp_path, "init", str(cfg), "--taxii", "--webhook", "--tier", "premium")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600  # it holds the webhook secret
    written = tomllib.loads(cfg.read_text())
    secret = written["webhook"]["sources"][0]["secret"]
    r = run(tmp_path, "config", "check", "--config", str(cfg),
            env_extra={"VT_API_KEY": "k3y-from-the-environment"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stderr
    shown = tomllib.loads(r.stdout)
    assert (shown["quota"]["tier"], shown["quota"]["per_minute"]) == ("premium", 1000)
    assert shown["policy"]["malicious_min"] == 3  # defaults are filled in
    assert shown["virustotal"]["api_key"] == "********"
    assert shown["webhook"]["sources"][0]["secret"] == "********"
    assert secret not in r.stdout and "k3y-from-the-environment" not in r.stdout
    assert shown["taxii"]["collections"][0]["id"] == written["taxii"]["collections"][0]["id"]
    # never overwritten by accident
    r = run(tmp_path, "init", str(cfg))
    assert r.returncode == 2 and "exists" in r.stderr


def test_init_without_a_terminal_writes_the_core_only(tmp_path):
    r = run(tmp_path, "init")
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads((tmp_path / "vtconnect.toml").read_text())
    assert doc["quota"]["tier"] == "public" and "taxii" not in doc and "webhook" not in doc


def test_check_reports_the_first_problem_of_any_part(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[taxii.collections]]\nid = "5e1f3a2b-9c4d-4e8f-a1b2-c3d4e5f60718"\ntitle = "F"\n'
        'read = ["firewal"]\n'
    )
    r = run(tmp_path, "config", "check", "--config", str(cfg))
    assert r.returncode == 2 and "no user 'firewal'" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text('[webhook]\nport = 70000\n')
    r = run(tmp_path, "config", "check", "--config", str(cfg))
    assert r.returncode == 2 and "webhook.port" in r.stderr
    cfg.write_text('[[webhook.sources]]\nname = "k"\nsecret = "short"\n')
    r = run(tmp_path, "config", "check", "--config", str(cfg))
    assert r.returncode == 2 and "secret must be at least 16" in r.stderr


def test_check_shows_the_database_without_its_password(tmp_path):
    url = "postgresql://vtc:db-pa55word@db.example:5432/vtconnect"
    r = run(tmp_path, "config", "check", env_extra={"VTCONNECT_DATABASE": url})
    assert r.returncode == 0, r.stderr
    shown = tomllib.loads(r.stdout)
    assert shown["core"]["database"] == "postgresql://vtc:********@db.example:5432/vtconnect"
    assert "db-pa55word" not in r.stdout + r.stderr
