"""The hub over real sockets: a `vtconnect serve --webhook` process with [[api.clients]] and an
emulator of its own; `vtconnect lookup --remote` as a real process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from connectors.emulator.server import EmulatorThread

EXE = os.path.join(os.path.dirname(sys.executable), "vtconnect")
TOKENS = {"soc-cli": "soc-cli-token-0123456789", "splunk-shc": "splunk-shc-token-0123456789",
          "bulk-feed": "bulk-feed-token-0123456789"}  # fmt: skip
VALUE = "44d88612fea8a8f36de82e1278abb02f"
OTHER = "198.51.100.7"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hub_config(tmp: Path) -> str:
    return f"""
[core]
state_dir = "{tmp / "hub-state"}"
[quota]
tier = "unlimited"
[privacy]
allow_documentation_ranges = true
[webhook]
port = 0
[[api.clients]]
name = "soc-cli"
token_sha256 = "{_sha(TOKENS["soc-cli"])}"
[[api.clients]]
name = "splunk-shc"
token_sha256 = "{_sha(TOKENS["splunk-shc"])}"
priority = "alert"
[[api.clients]]
name = "bulk-feed"
token_sha256 = "{_sha(TOKENS["bulk-feed"])}"
priority = "bulk"
daily_share = 0.2
"""


@pytest.fixture(scope="module")
def emulator():
    emu = EmulatorThread()
    url = emu.start()
    yield url
    emu.stop()


class Hub:
    def __init__(self, proc: subprocess.Popen, url: str, state: Path, log: Path) -> None:
        self.proc, self.url, self.state, self.log_path = proc, url, state, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, body, token=TOKENS["soc-cli"], ctype="application/json", raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": ctype}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + "/v1/enrich", data, headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())


@pytest.fixture(scope="module")
def hub(tmp_path_factory, emulator):
    tmp = tmp_path_factory.mktemp("hub")
    cfg = tmp / "vtconnect.toml"
    cfg.write_text(hub_config(tmp))
    log = tmp / "serve.log"
    env = dict(os.environ, VTCONNECT_CONFIG=str(cfg), VT_API_URL=emulator, VT_API_KEY="k")
    with open(log, "wb") as out:
        proc = subprocess.Popen([EXE, "serve", "--webhook", "-v"], env=env, stderr=out)
    url = ""
    deadline = time.monotonic() + 30
    while not url and time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("webhook listening on "):
                url = line.split()[-1]
        time.sleep(0.05)
    hub = Hub(proc, url, tmp / "hub-state", log)
    try:
        assert url, log.read_text()
        yield hub
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert "Traceback" not in hub.log(), hub.log()[-4000:]


def _emulator_calls(url: str) -> int:
    with urllib.request.urlopen(url + "/_emulator/counters") as r:
        return json.loads(r.read())["requests"]


def _lookup(env_extra, *args, tmp: Path, emulator: str):
    env = dict(os.environ, VT_API_URL=emulator, VT_API_KEY="k", VTCONNECT_CONFIG="")
    env.pop("VTCONNECT_REMOTE", None)
    env.pop("VTCONNECT_REMOTE_TOKEN", None)
    tmp.mkdir(exist_ok=True)
    cfg = tmp / "direct.toml"
    cfg.write_text(f'[core]\nstate_dir = "{tmp / "direct-state"}"\n[quota]\ntier = "unlimited"\n'
                   "[privacy]\nallow_documentation_ranges = true\n")  # fmt: skip
    env.update(env_extra)
    return subprocess.run([EXE, "--config", str(cfg), "lookup", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_remote_lookup_prints_what_a_direct_lookup_prints(hub, emulator, tmp_path):
    direct = _lookup({}, "--format", "json", VALUE, OTHER, tmp=tmp_path, emulator=emulator)
    assert direct.returncode == 0, direct.stderr
    # The hub's own answer is not cached yet: the same objects, field for field.
    remote = _lookup({"VTCONNECT_REMOTE_TOKEN": TOKENS["soc-cli"]}, "--format", "json",
                     "--remote", hub.url, VALUE, OTHER, tmp=tmp_path / "r",
                     emulator="http://127.0.0.1:9")  # never used: the hub looks up  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(direct.stdout)
    assert {r["value"] for r in json.loads(remote.stdout)} == {VALUE, OTHER}
    # the hub's verdict log names the client, not "serve" or "cli"
    with sqlite3.connect(hub.state / "cache.db") as db:
        names = {c for (c,) in db.execute("SELECT connector FROM verdict_log")}
    assert "soc-cli" in names and not names & {"serve", "cli", "webhook"}


def _raw_enrich(hub: Hub, values) -> bytes:
    req = urllib.request.Request(hub.url + "/v1/enrich", json.dumps({"values": values}).encode(),
                                 {"Content-Type": "application/json",
                                  "Authorization": f"Bearer {TOKENS['soc-cli']}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        return r.read()


def test_a_warm_answer_is_what_lookup_prints_byte_for_byte(hub, emulator, tmp_path):
    """The hub keeps each warm answer's JSON rendered; it is still exactly what the CLI prints:
    the objects of `--format json`, and byte for byte the lines of `--format jsonl`."""
    values = ["275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "198.51.100.9",
              "https://example.com/päth?q=ü", "example.org", "not an indicator"]  # fmt: skip
    asked = values + [values[1]]  # a value twice: two results
    for _ in range(2):  # the second run answers from the cache: cached is true in both
        direct = _lookup({}, "--format", "json", *values, tmp=tmp_path, emulator=emulator)
        assert direct.returncode == 0, direct.stderr
    lines = _lookup({}, "--format", "jsonl", *values, tmp=tmp_path, emulator=emulator)
    assert lines.returncode == 0, lines.stderr
    line_for = {json.loads(x)["value"]: x for x in lines.stdout.splitlines()}
    _raw_enrich(hub, asked)  # looks up what the hub did not know
    warm = [_raw_enrich(hub, asked) for _ in range(2)]
    assert warm[0] == warm[1]
    expected = '{"results": [' + ", ".join(line_for[v] for v in asked) + "]}"
    assert warm[0] == expected.encode()
    by_value = {r["value"]: r for r in json.loads(direct.stdout)}
    assert json.loads(warm[0])["results"] == [by_value[v] for v in asked]
    assert [by_value[v]["cached"] for v in values] == [True] * 4 + [False]


def test_a_value_asked_by_two_clients_costs_one_call(hub, emulator):
    value = "d41d8cd98f00b204e9800998ecf8427e"
    before = _emulator_calls(emulator)
    s1, _, a = hub.post({"values": [value]}, TOKENS["soc-cli"])
    s2, _, b = hub.post({"values": [value]}, TOKENS["splunk-shc"])
    assert (s1, s2) == (200, 200)
    assert _emulator_calls(emulator) - before == 1
    assert a["results"][0]["cached"] is False and b["results"][0]["cached"] is True
    assert a["results"][0]["verdict"] == b["results"][0]["verdict"]


def test_priority_is_capped_at_the_clients_own(hub):
    status, headers, _ = hub.post({"values": [OTHER], "priority": "interactive"},
                                  TOKENS["bulk-feed"])  # fmt: skip
    assert status == 200 and headers["X-Vtconnect-Priority"] == "bulk"
    status, headers, _ = hub.post({"values": [OTHER]}, TOKENS["splunk-shc"])
    assert status == 200 and headers["X-Vtconnect-Priority"] == "alert"
    status, headers, _ = hub.post({"values": [OTHER], "priority": "background"},
                                  TOKENS["soc-cli"])  # fmt: skip
    assert status == 200 and headers["X-Vtconnect-Priority"] == "background"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"not json", 400, "bad_json"),
        (b"\xff\xfe", 400, "bad_json"),
        (b"[1, 2]", 400, "bad_request"),
        (b'{"values": "x"}', 400, "bad_values"),
        (b'{"values": [1]}', 400, "bad_values"),
        (b'{"values": ["a"], "extra": 1}', 400, "unknown_key"),
        (b'{"values": ["a"], "deadline": 0}', 400, "bad_deadline"),
        (b'{"values": ["a"], "deadline": 301}', 400, "bad_deadline"),
        (b'{"values": ["a"], "deadline": NaN}', 400, "bad_json"),
        (b'{"values": ["a"], "deadline": true}', 400, "bad_deadline"),
        (b'{"values": ["a"], "deadline": "5"}', 400, "bad_deadline"),
        (b'{"values": ["a"], "priority": "urgent"}', 400, "bad_priority"),
        (b'{"values": ["a"], "type": "email"}', 400, "bad_type"),
        (b'{"values": ["' + b"a" * 9000 + b'"]}', 400, "bad_values"),
        (json.dumps({"values": ["1.2.3.4"] * 10_001}).encode(), 413, "too_many_values"),
        (b"[" * 100_000, 400, "bad_json"),
    ],
)
def test_hostile_bodies_are_json_4xx(hub, body, status, code):
    got, _, doc = hub.post(None, raw=body)
    assert (got, doc["error"]) == (status, code), doc
    assert set(doc) == {"error", "message"}


def test_auth_and_media_type(hub):
    assert hub.post({"values": []}, token="")[0] == 401
    got, headers, doc = hub.post({"values": []}, token="wrong-token-0123456789")
    assert got == 401 and doc["error"] == "unauthorized" and "WWW-Authenticate" in headers
    got, _, doc = hub.post(None, ctype="text/plain", raw=b'{"values": []}')
    assert (got, doc["error"]) == (415, "unsupported_media_type")
    assert hub.post({"values": []}) == (200, hub.post({"values": []})[1], {"results": []})


def test_too_large_a_body_is_413(hub):
    host, port = hub.url.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/enrich HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 99999999\r\nConnection: close\r\n\r\n")  # fmt: skip
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer


def test_unreachable_hub_is_one_line_and_exit_1(tmp_path, emulator):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"VTCONNECT_REMOTE": f"http://127.0.0.1:{port}", "VTCONNECT_REMOTE_TOKEN": "t"}
    out = _lookup(env, VALUE, tmp=tmp_path, emulator=emulator)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("error: cannot reach the hub") and out.stderr.count("\n") == 1


def test_rejected_token_exits_3(hub, tmp_path, emulator):
    out = _lookup({"VTCONNECT_REMOTE_TOKEN": "not-a-client-token"}, "--remote", hub.url, VALUE,
                  tmp=tmp_path, emulator=emulator)  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert "rejected the token" in out.stderr and "Traceback" not in out.stderr


def test_remote_streams_every_format_but_stix(hub, tmp_path, emulator):
    env = {"VTCONNECT_REMOTE_TOKEN": TOKENS["soc-cli"], "VTCONNECT_REMOTE": hub.url}
    out = _lookup(env, "--format", "jsonl", VALUE, OTHER, tmp=tmp_path, emulator=emulator)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2, out.stderr
    out = _lookup(env, "--format", "csv", VALUE, tmp=tmp_path, emulator=emulator)
    assert out.returncode == 0 and out.stdout.startswith("value,kind"), out.stderr
    out = _lookup(env, VALUE, tmp=tmp_path, emulator=emulator)
    assert out.returncode == 0 and "VirusTotal verdicts" in out.stdout, out.stderr
    out = _lookup(env, "--format", "stix", VALUE, tmp=tmp_path, emulator=emulator)
    assert out.returncode == 2 and "needs a direct lookup" in out.stderr


def _faults(emulator: str, doc: dict) -> None:
    req = urllib.request.Request(emulator + "/_emulator/faults", json.dumps(doc).encode(),
                                 {"Content-Type": "application/json"}, method="POST")  # fmt: skip
    urllib.request.urlopen(req, timeout=10).read()


def test_remote_ctrl_c_keeps_and_prints_what_is_done(hub, emulator, tmp_path):
    from connectors.cli.remote import BATCH

    values = [f"{i:032x}" for i in range(1, 2 * BATCH + 1)]
    assert hub.post({"values": values[:BATCH]})[0] == 200  # the first batch is warm
    _faults(emulator, {"latency_ms": 400})  # the second one takes many seconds
    try:
        iocs = tmp_path / "iocs.txt"
        iocs.write_text("\n".join(values) + "\n")
        env = dict(os.environ, VTCONNECT_CONFIG="", VTCONNECT_REMOTE=hub.url,
                   VTCONNECT_REMOTE_TOKEN=TOKENS["soc-cli"])  # fmt: skip
        stdout = tmp_path / "out.jsonl"  # a file: 200 rows would fill a pipe nobody reads
        with open(stdout, "w") as fh:
            args = [EXE, "lookup", "--format", "jsonl", "-f", str(iocs)]
            proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while stdout.read_text().count("\n") < BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None  # streamed while the second batch is out
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        out, err = stdout.read_text(), proc.stderr.read()
        first = ""
    finally:
        _faults(emulator, {"latency_ms": 0})
    assert proc.returncode == 130, err
    rows = [json.loads(x) for x in (first + out).splitlines()]
    assert [r["value"] for r in rows] == values[:BATCH]
    assert f"interrupted: {BATCH} of {2 * BATCH} values done" in err and "Traceback" not in err
