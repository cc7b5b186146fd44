"""Several hosts, one VirusTotal budget: three `vtconnect lookup` processes and two `vtconnect
serve` replicas (hub clients ask them through POST /v1/enrich), each with its own state dir,
sharing one PostgreSQL database ([core] database), all at the public tier (4 calls per 60 s)
against one emulator that enforces it. The emulator records when every API request arrives.

Together they never send more than 4 requests in any 60 s and the emulator answers no 429;
what did not fit before a caller's deadline comes back as `quota`. One SQLite ledger per host
would let each host spend 4 a minute (20 here, 16 of them answered 429).

The one-window run takes a few seconds and always runs. The run across two windows lasts a
little over a minute (the window is VirusTotal's real 60 s), so it runs when
VTCONNECT_TEST_LONG=1 (`make test-long`) and skips with that reason otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.quota import TierQuota
from connectors.emulator.server import EmulatorThread
from tests.processes import EXE, Served

KEY = "multi-host-key"
TOKEN = "multi-host-hub-token-0123456789"
LONG = os.environ.get("VTCONNECT_TEST_LONG", "").strip().lower() in ("1", "yes", "true", "on")


class RecordingQuota(TierQuota):
    """The emulator's own public-tier quota, noting when each request arrived and whether it
    was let through."""

    def __init__(self) -> None:
        super().__init__(4, 500)
        self.arrivals: List[float] = []
        self.refused = 0
        self._lock = threading.Lock()

    def take(self):
        refused = super().take()
        with self._lock:
            if refused:
                self.refused += 1
            else:
                self.arrivals.append(self.clock())
        return refused


def most_in_any_window(times: List[float], window: float = 60.0) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times)),
               default=0)  # fmt: skip


def values(host: str, n: int = 3) -> List[str]:
    return [hashlib.sha256(f"{host}-{i}".encode()).hexdigest() for i in range(n)]


def config(tmp: Path, name: str) -> Path:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp / name}"\n[quota]\ntier = "public"\n'
        f'[webhook]\nport = 0\n[[api.clients]]\nname = "soc"\ntoken_sha256 = "{digest}"\n'
    )
    return cfg


def env(tmp: Path, name: str, emulator: str, database: str) -> Dict[str, str]:
    e = dict(os.environ, VTCONNECT_CONFIG=str(config(tmp, name)), VT_API_URL=emulator,
             VT_API_KEY=KEY, VTCONNECT_DATABASE=database)  # fmt: skip
    for name_ in ("VTCONNECT_REMOTE", "VTCONNECT_REMOTE_TOKEN"):
        e.pop(name_, None)
    return e


def enrich(url: str, batch: List[str], deadline: float) -> List[dict]:
    body = json.dumps({"values": batch, "deadline": deadline}).encode()
    req = urllib.request.Request(url + "/v1/enrich", body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=deadline + 60) as r:
        return json.loads(r.read())["results"]


@pytest.mark.parametrize(
    "deadline",
    [
        8.0,
        pytest.param(75.0, marks=pytest.mark.skipif(
            not LONG, reason="a run across two 60 s windows: VTCONNECT_TEST_LONG=1")),
    ],  # fmt: skip
    ids=["one-window", "two-windows"],
)
def test_cli_processes_and_replicas_share_one_public_budget(tmp_path, pg_database, deadline):
    quota = RecordingQuota()
    emu = EmulatorThread(EmulatorConfig(default_tier="public"))
    emulator = emu.start()
    assert emu.running is not None
    emu.running.emulator.quotas[KEY] = quota
    replicas: List[Served] = []
    results: Dict[str, List[dict]] = {}
    failures: List[str] = []
    try:
        for name in ("replica-a", "replica-b"):
            replicas.append(Served(["serve", "--webhook"], env(tmp_path, name, emulator,
                                   pg_database), tmp_path / f"{name}.log"))  # fmt: skip
        urls = [r.wait_listening(1)["webhook"] for r in replicas]
        clis = {
            f"cli-{i}": subprocess.Popen(
                [EXE, "lookup", *values(f"cli-{i}"), "--format", "json",
                 "--deadline", str(deadline)],
                env=env(tmp_path, f"cli-{i}", emulator, pg_database), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            for i in range(3)
        }

        def ask(name: str, url: str) -> None:
            try:
                results[name] = enrich(url, values(name), deadline)
            except Exception as exc:  # reported below, with the replica's stderr
                failures.append(f"{name}: {exc!r}")

        askers = [threading.Thread(target=ask, args=(f"hub-{i}", u)) for i, u in enumerate(urls)]
        for t in askers:
            t.start()
        for name, proc in clis.items():
            out, err = proc.communicate(timeout=deadline + 60)
            assert proc.returncode in (0, 1), f"{name}: {proc.returncode}\n{err}"
            results[name] = json.loads(out)
        for t in askers:
            t.join(deadline + 60)
    finally:
        for r in replicas:
            r.stop()
        emu.stop()
    assert not failures, (failures, [r.log()[-2000:] for r in replicas])
    assert sorted(results) == ["cli-0", "cli-1", "cli-2", "hub-0", "hub-1"]
    verdicts = [r["verdict"] for rs in results.values() for r in rs]
    assert len(verdicts) == 15
    answered = [v for v in verdicts if v != "quota"]
    assert quota.refused == 0  # the emulator answered no 429
    assert most_in_any_window(quota.arrivals) <= 4
    assert len(answered) == len(quota.arrivals)  # every call that left gave a verdict
    assert "error" not in verdicts
    if deadline < 60:
        assert len(quota.arrivals) == 4  # the five clients together had one window's budget
    else:
        assert len(quota.arrivals) >= 5  # the budget of the next window was used too
        assert max(quota.arrivals) - min(quota.arrivals) >= 60


def test_vtconnect_quota_shows_the_budget_every_host_spent(tmp_path, pg_database):
    from click.testing import CliRunner

    from connectors.cli import main
    from connectors.core.quota import QuotaGovernor

    other_host = QuotaGovernor(pg_database, KEY, 4, 500)
    try:
        for _ in range(3):
            other_host.sent(asyncio.run(other_host.take()))
    finally:
        other_host.close()
    cfg = tmp_path / "here.toml"
    cfg.write_text(f'[core]\nstate_dir = "{tmp_path / "here"}"\n[quota]\ntier = "public"\n')
    env = {"VTCONNECT_CONFIG": str(cfg), "VTCONNECT_DATABASE": pg_database, "VT_API_KEY": KEY}
    r = CliRunner().invoke(main, ["quota"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "used_today: 3" in r.output and "used_last_minute: 3" in r.output, r.output
    assert not (tmp_path / "here" / "quota.db").exists()  # nothing kept on this host


def test_serve_refuses_a_newer_quota_schema_in_one_line(tmp_path, pg_database):
    from connectors.core import database
    from connectors.core.ledger import open_ledger

    open_ledger(pg_database).close()
    conn = database.connect(pg_database)
    conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'quota'")
    conn.close()
    replica = env(tmp_path, "replica", "http://127.0.0.1:9", pg_database)
    proc = subprocess.run([EXE, "serve", "--webhook"], env=replica, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "quota is version 99, newer than this vtconnect" in lines[0], lines


@pytest.mark.parametrize("args", [["lookup", "44d88612fea8a8f36de82e1278abb02f"], ["quota"]])
def test_an_unreachable_shared_ledger_is_one_line_and_exit_2(tmp_path, args):
    from click.testing import CliRunner

    from connectors.cli import main

    env = {"VTCONNECT_CONFIG": "", "VT_API_KEY": KEY, "XDG_STATE_HOME": str(tmp_path),
           "VTCONNECT_DATABASE": "postgresql://nobody@/x?host=/nonexistent"}  # fmt: skip
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to core.database" in lines[0], r.stderr
