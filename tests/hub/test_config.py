"""[api] and [remote]: validated before serve binds and by `vtconnect config check`; a client's
daily_share is a [quota.shares] reservation every process agrees on."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from connectors.core import config
from connectors.core.quota import Priority
from connectors.hub.config import load, remote
from connectors.serve import plan

EXE = os.path.join(os.path.dirname(sys.executable), "vtconnect")
DIGEST = hashlib.sha256(b"a-token").hexdigest()


def client(**kw):
    return {"name": "shc", "token_sha256": DIGEST, **kw}


def test_clients_are_read_and_tokens_found():
    cfg = load({"api": {"clients": [client(priority="bulk")]}})
    assert cfg.client_for("a-token").name == "shc"
    assert cfg.client_for("a-token").priority == Priority.BULK
    assert cfg.client_for("another") is None and cfg.client_for("") is None
    assert cfg.client_for("\udcff") is None  # a header byte that is not UTF-8: no 500


@pytest.mark.parametrize(
    "api, message",
    [
        ({"clients": {}}, "api.clients must be a list"),
        ({"client": []}, "unknown key api.client"),
        ({"clients": [client(name="a b")]}, "name must be letters"),
        ({"clients": [client(token_sha256="abc")]}, "token_sha256 must be 64 hex digits"),
        ({"clients": [client(priority="urgent")]}, "priority must be one of"),
        ({"clients": [client(daily_share=2)]}, "daily_share must be a number from 0 to 1"),
        ({"clients": [client(), client()]}, "is used twice"),
        ({"clients": [client(), client(name="x")]}, "the token of another client"),
        ({"clients": [client(token_sha25="x")]}, "did you mean 'token_sha256'"),
    ],
)
def test_bad_clients_stop_serve_before_it_binds(api, message):
    # as the hub reads its section (the core reads only names and shares)
    settings = config.from_mapping({}, env={}).with_(raw={"api": api})
    with pytest.raises(config.ConfigError, match=message):
        plan(settings, ["webhook"])


def test_daily_share_is_a_quota_share():
    s = config.from_mapping(
        {"api": {"clients": [client(daily_share=0.25)]}, "quota": {"shares": {"webhook": 0.5}}},
        env={},
    )
    assert dict(s.quota.shares) == {"webhook": 0.5, "shc": 0.25}
    # a client may be named in [quota.shares] instead
    s = config.from_mapping({"api": {"clients": [client()]}, "quota": {"shares": {"shc": 0.1}}},
                            env={})  # fmt: skip
    assert dict(s.quota.shares) == {"shc": 0.1}
    with pytest.raises(config.ConfigError, match="unknown connector quota.shares.other"):
        config.from_mapping({"api": {"clients": [client()]}, "quota": {"shares": {"other": 0.1}}},
                            env={})  # fmt: skip
    with pytest.raises(config.ConfigError, match="set one of them"):
        config.from_mapping(
            {"api": {"clients": [client(daily_share=0.2)]}, "quota": {"shares": {"shc": 0.1}}},
            env={},
        )
    with pytest.raises(config.ConfigError, match="add up to 1.2"):
        config.from_mapping(
            {"api": {"clients": [client(daily_share=0.7)]}, "quota": {"shares": {"cli": 0.5}}},
            env={},
        )


def test_remote_settings_and_overrides():
    assert remote({}, env={}).url == ""
    r = remote({"remote": {"url": "https://hub.example/", "token": "t"}}, env={})
    assert (r.url, r.token) == ("https://hub.example", "t")
    r = remote({}, env={"VTCONNECT_REMOTE": "http://h:1", "VTCONNECT_REMOTE_TOKEN": "u"})
    assert (r.url, r.token) == ("http://h:1", "u")
    assert remote({}, env={"VTCONNECT_REMOTE": "http://h:1", "VTCONNECT_REMOTE_TOKEN": "u"},
                  url="http://cli:2").url == "http://cli:2"  # fmt: skip
    with pytest.raises(config.ConfigError, match="no token"):
        remote({"remote": {"url": "https://hub.example"}}, env={})
    with pytest.raises(config.ConfigError, match="http"):
        remote({"remote": {"url": "hub.example", "token": "t"}}, env={})
    with pytest.raises(config.ConfigError, match="unknown key remote.tokn"):
        remote({"remote": {"tokn": "t"}}, env={})


def _run(*args, env=None, cwd=None):
    env = dict(os.environ, VTCONNECT_CONFIG="", **(env or {}))
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=60,
                          cwd=cwd)  # fmt: skip


def test_api_token_prints_a_block_that_config_check_accepts(tmp_path):
    out = _run("api", "token", "splunk-shc", "--priority", "alert", "--daily-share", "0.3")
    assert out.returncode == 0, out.stderr
    token = out.stderr.strip().rsplit(" ", 1)[-1]
    assert hashlib.sha256(token.encode()).hexdigest() in out.stdout
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text("[webhook]\nport = 0\n" + out.stdout)
    check = _run("--config", str(cfg), "config", "check")
    assert check.returncode == 0, check.stderr
    assert 'token_sha256 = "********"' in check.stdout and token not in check.stdout
    assert "splunk-shc = 0.3" in check.stdout  # the reservation is in [quota.shares]
    assert load(config.load(str(cfg), env={}).raw).client_for(token).priority == Priority.ALERT
    cfg.write_text(out.stdout.replace('"alert"', '"urgent"'))
    bad = _run("--config", str(cfg), "config", "check")
    assert bad.returncode == 2 and "priority must be one of" in bad.stderr
    assert _run("api", "token", "no spaces").returncode == 2
