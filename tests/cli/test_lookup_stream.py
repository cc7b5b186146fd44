"""`vtconnect lookup` as a real process: rows stream out as they complete, Ctrl-C keeps what is
done (printed as a valid document, in the cache) and exits 130, `--extract` finds indicators in
free text, and an unreachable API is said once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.emulator.cli_support import build_config
from connectors.emulator.server import EmulatorThread

EXE = str(Path(sys.executable).with_name("vtconnect"))
# 40 distinct cold values (the emulator answers every well-formed hash)
VALUES = [f"{i:032x}" for i in range(1, 41)]


@pytest.fixture
def slow_emulator():
    emu = EmulatorThread(build_config("unlimited", (), False, '{"latency_ms": 400}'))
    url = emu.start()
    yield url
    emu.stop()


def _env(tmp_path, url):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(f'[core]\nstate_dir = "{tmp_path / "state"}"\n[quota]\ntier = "unlimited"\n'
                   "[virustotal]\nmax_concurrency = 4\n")  # fmt: skip
    return dict(os.environ, VT_API_URL=url, VT_API_KEY="k", VTCONNECT_CONFIG=str(cfg))


def test_ctrl_c_keeps_and_prints_what_is_done(tmp_path, slow_emulator):
    env = _env(tmp_path, slow_emulator)
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("\n".join(VALUES) + "\n")
    proc = subprocess.Popen([EXE, "lookup", "--format", "json", "-f", str(iocs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    first = proc.stdout.readline()  # "[": the first batch of 8 is out, 4 batches are not
    assert first.strip() == "[" and proc.poll() is None  # streamed while still running
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    out, err = proc.stdout.read(), proc.stderr.read()  # (communicate would skip buffered text)
    assert proc.returncode == 130, err
    rows = json.loads(first + out)  # a valid document
    assert 0 < len(rows) < len(VALUES)
    assert [r["value"] for r in rows] == VALUES[: len(rows)]
    assert f"interrupted: {len(rows)} of 40 values done" in err and "Traceback" not in err
    stats = subprocess.run([EXE, "cache", "stats", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert json.loads(stats.stdout)["entries"] >= len(rows)  # what was printed was kept


def test_csv_and_jsonl_stream_one_line_per_value(tmp_path, emulator_url):
    env = _env(tmp_path, emulator_url)
    for fmt, header in (("csv", 1), ("jsonl", 0)):
        r = subprocess.run([EXE, "lookup", "--format", fmt, *VALUES[:20]], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and len(lines) == 20 + header, r.stderr
    assert [json.loads(x)["value"] for x in lines] == VALUES[:20]


def test_extract_finds_indicators_in_free_text(tmp_path, emulator_url):
    env = _env(tmp_path, emulator_url)
    text = ("Dec  2 10:01:02 fw1 deny src=10.1.2.3 dst=203.0.113.66 url=hxxp://evil[.]example/x\n"
            "From: alice@corp.example.com\nAttachment hash 44d88612fea8a8f36de82e1278abb02f\n")
    r = subprocess.run([EXE, "lookup", "--extract", "--format", "jsonl", "-f", "-"], env=env,
                       input=text, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = {json.loads(x)["value"] for x in r.stdout.splitlines()}
    assert {"http://evil.example/x", "44d88612fea8a8f36de82e1278abb02f"} <= got
    assert "x" not in got and "Dec" not in " ".join(got)
    r = subprocess.run([EXE, "lookup", "--extract", "nothing to see here"], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0 and "no indicators found" in r.stderr


def test_unreachable_api_is_said_once(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(tmp_path, f"http://127.0.0.1:{port}")
    cfg = Path(env["VTCONNECT_CONFIG"])
    cfg.write_text(cfg.read_text() + "retries = 0\n")
    r = subprocess.run([EXE, "lookup", *VALUES[:5]], env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if "cannot reach" in x]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "vtconnect emulator" in lines[0]
