"""The real `vtconnect` console script when something is wrong: a bad configuration or a port in
use is one line naming the key and exit 2, before anything listens; a rejected API key is exit 3
with one line and no traceback."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ..processes import EXE, busy_port, env_for, no_traceback, run

FEED = "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5"
COLLECTION = f'[taxii]\nport = 0\n[[taxii.collections]]\nid = "{FEED}"\ntitle = "Feed"\n'
SOURCE = '[webhook]\nport = 0\n[[webhook.sources]]\nname = "siem"\nauth = "none"\n'


@pytest.mark.parametrize("toml, key", [
    ('[webhook]\nport = 0\n[[webhook.sources]]\nname = "a"\nsecret = "short"\n',
     "webhook.sources[0].secret"),
    ('[taxii]\nport = 0\n[[taxii.collections]]\nid = "feed-1"\ntitle = "x"\n',
     "taxii.collections[0].id"),
    (COLLECTION + 'publish = ["evil"]\n', "taxii.collections[0].publish"),
    ('[webhook]\nport = 0\n[[webhook.sources]]\nname = "a"\nformat = "nope"\nauth = "none"\n',
     "webhook.sources[0].format"),
    # the TAXII part is fine and would start first: nothing may listen before the error
    (COLLECTION + '[webhook]\nport = 0\n[[webhook.sources]]\nname = "a"\nrate_per_minute = 0\n'
     'auth = "none"\n', "webhook.sources[0].rate_per_minute"),
    (COLLECTION + '[[taxii.users]]\nname = "x"\npassword_hash = "plain"\n', "taxii.users[0]"),
    ("[taxii]\nport = true\n", "taxii.port"),
    ("[taxii]\nport = 70000\n", "taxii.port"),
    ('[taxii]\nport = 0\nstore = "/proc/none/taxii.db"\n', "taxii.store"),
    ('[quota]\ntier = "gold"\n' + SOURCE, "quota.tier"),
])  # fmt: skip
def test_serve_with_a_bad_configuration_is_one_line_and_exit_2(tmp_path, toml, key):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(toml)
    r = run(["serve"], env_for(cfg, "http://127.0.0.1:9", tmp_path), timeout=30)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and key in lines[0], r.stderr
    assert "listening" not in r.stderr


def _with_port(text: str, port: int) -> str:
    return text.replace("port = 0", f"port = {port}", 1)


@pytest.mark.parametrize("busy", ["taxii", "webhook"])
def test_serve_on_a_port_in_use_is_one_line_and_exit_2(tmp_path, busy):
    sock, port = busy_port()
    try:
        taxii = _with_port(COLLECTION, port) if busy == "taxii" else COLLECTION
        webhook = _with_port(SOURCE, port) if busy == "webhook" else SOURCE
        cfg = tmp_path / "vtconnect.toml"
        cfg.write_text(taxii + webhook)
        r = run(["serve"], env_for(cfg, "http://127.0.0.1:9", tmp_path), timeout=30)
    finally:
        sock.close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and f"{busy}.port" in lines[0] and str(port) in lines[0], r.stderr
    assert "listening" not in r.stderr


def test_emulator_on_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    sock, port = busy_port()
    try:
        r = run(["emulator", "--port", str(port)], env_for(tmp_path / "none.toml", "", tmp_path))
    finally:
        sock.close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "in use" in lines[0], r.stderr


@pytest.fixture
def strict_emulator(tmp_path):
    """`vtconnect emulator --strict-keys` as a real process: only the key `good` is accepted."""
    out = tmp_path / "emulator.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [EXE, "emulator", "--port", "0", "--strict-keys", "--key", "good:unlimited"],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for _ in range(200):
            text = out.read_text()
            if "emulator on " in text:
                yield text.split("emulator on ", 1)[1].split()[0]
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the emulator did not start: " + out.read_text())
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_rejected_api_key_is_exit_3_and_one_line(tmp_path: Path, strict_emulator):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(f'[core]\nstate_dir = "{tmp_path / "state"}"\n[quota]\ntier = "unlimited"\n')
    values = ["example.com", "example.org", "example.net", "44d88612fea8a8f36de82e1278abb02f",
              "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
              "8.8.8.8"]  # fmt: skip
    r = run(["lookup", *values], env_for(cfg, strict_emulator, tmp_path, key="wrong"))
    assert r.returncode == 3, r.stderr
    assert no_traceback(r.stderr) is None, r.stderr
    assert r.stderr.splitlines() == [
        "error: VirusTotal rejected the API key (WrongCredentialsError): Wrong API key"
    ]
    ok = run(["lookup", "example.com"], env_for(cfg, strict_emulator, tmp_path, key="good"))
    assert ok.returncode == 0, ok.stderr
