"""`vtconnect serve --taxii` as a real process: /healthz and /metrics on the TAXII part, one
access line per request without query strings or credentials, failed logins logged and counted,
JSON log lines with --log-format json, and "listening" said once."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from taxii.config import hash_password

from .processes import Served, env_for

COLLECTION = "5e1f3a2b-9c4d-4e8f-a1b2-c3d4e5f60718"


def start(tmp_path, emulator_url, *extra):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path}"\n[taxii]\nport = 0\n'
        f'[[taxii.collections]]\nid = "{COLLECTION}"\ntitle = "Feed"\nread = ["analyst"]\n'
        f'[[taxii.users]]\nname = "analyst"\npassword_hash = "{hash_password("pw", 1000)}"\n'
    )
    env = env_for(cfg, emulator_url, tmp_path)
    srv = Served(["serve", "--taxii", *extra], env, tmp_path / "serve.log")
    return srv, srv.wait_listening(1)["taxii"]


def get(url, auth=None):
    req = urllib.request.Request(url, headers={"Accept": "application/taxii+json;version=2.1"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def stop(srv):
    srv.stop()
    return srv.log()


def test_taxii_part_health_metrics_and_access_log(tmp_path, emulator_url):
    proc, url = start(tmp_path, emulator_url)
    try:
        assert get(url + "/healthz") == (200, '{"status": "ok"}')
        assert get(f"{url}/api/collections/{COLLECTION}/objects/?limit=5", "analyst:pw")[0] == 200
        assert get(f"{url}/api/collections/", "analyst:wrong-password")[0] == 401
        status, text = get(url + "/metrics")
        assert status == 200
        assert "vtconnect_taxii_auth_failures_total 1.0" in text
        assert ('vtconnect_taxii_requests_total{method="GET",route='
                '"/{root}/collections/{collection}/objects/",status="200"} 1.0') in text
        assert "vtconnect_quota_left_today" in text
    finally:
        err = stop(proc)
    assert err.count("listening on") == 1  # said once
    lines = [x for x in err.splitlines() if "event=" in x]
    assert any("event=request" in x and "route=/{root}/collections/{collection}/objects/" in x
               and "status=200" in x for x in lines), err  # fmt: skip
    failed = [x for x in lines if "event=auth_failed" in x]
    assert len(failed) == 1 and "WARNING" in failed[0]
    assert "limit=5" not in err and "wrong-password" not in err and "analyst:" not in err


def test_json_log_lines(tmp_path, emulator_url):
    proc, url = start(tmp_path, emulator_url, "--log-format", "json")
    try:
        status, _ = get(url + "/taxii2/")
    finally:
        err = stop(proc)
    docs = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    access = [d for d in docs if d.get("route") == "/taxii2/"]
    assert len(access) == 1 and access[0]["status"] == status and access[0]["level"] == "info"
    assert {"time", "level", "logger", "message", "client", "ms"} <= set(access[0])


CORE_GAUGES = ("vtconnect_quota_left_today", "vtconnect_cache_hits_today",
               "vtconnect_cache_misses_today")  # fmt: skip


def metric_of(line: str) -> str:
    """The metric an exposition line is about: `# HELP name ...`, `# TYPE name ...`, `name 1.0`."""
    words = line.split(" ")
    return words[2] if line.startswith("# ") and len(words) > 2 else words[0]


def test_every_part_shows_the_core_gauges_alike(tmp_path, emulator_url):
    """The TAXII part (the front door's /metrics) and the webhook receiver (its own) declare
    their metrics one way: the core's quota and cache gauges, with the same help and values."""
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path}"\n[taxii]\nport = 0\n'
        f'[[taxii.collections]]\nid = "{COLLECTION}"\ntitle = "Feed"\npublic = true\n'
        "[webhook]\nport = 0\n"
        '[[webhook.sources]]\nname = "open"\nformat = "generic"\nauth = "none"\n'
    )
    srv = Served(["serve", "--taxii", "--webhook"], env_for(cfg, emulator_url, tmp_path),
                 tmp_path / "serve.log")  # fmt: skip
    try:
        urls = srv.wait_listening(2)
        shown = {}
        for part in ("taxii", "webhook"):
            status, text = get(urls[part] + "/metrics")
            assert status == 200, text
            shown[part] = [x for x in text.splitlines() if metric_of(x) in CORE_GAUGES]
    finally:
        srv.stop()
    assert len(shown["taxii"]) == 3 * len(CORE_GAUGES), shown  # HELP, TYPE and the value
    assert shown["taxii"] == shown["webhook"]
