"""| vtlookup throughput: 100,000 events carrying 10,000 distinct indicators, warm cache
(an earlier search filled the KV store and this search head's kept answers), through the
protocol harness, against a no-op splunklib StreamingCommand on the same input in the same run
(they alternate, best of REPEATS each). Also the command process's peak RSS, and the same
search with kept answers switched off (`[command] answers_ttl = 0`, kvstore_only: the first
search on a search head after its kept answers expired, every distinct value answered from the
KV store documents' columns).

Run: .venv/bin/python bench/splunk.py   (BENCH_QUICK=1 for a short run)
Prints one JSON object on its last line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.emulator.server import EmulatorThread  # noqa: E402


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


harness = load("_bench_splunk_harness", ROOT / "tests" / "splunk" / "harness.py")
build = load("_bench_splunk_build", ROOT / "packaging" / "splunk_build.py")


REPEATS = 3


def events(n: int, distinct: int) -> List[Dict[str, str]]:
    indicators = []
    for i in range(distinct):
        if i % 2:
            indicators.append(f"host{i}.bench-example.com")
        else:
            indicators.append(f"{i:032x}")  # an MD5-shaped hash
    return [
        {
            "_time": str(1_700_000_000 + i),
            "host": "proxy01",
            "src_ip": f"10.0.{(i >> 8) & 255}.{i & 255}",
            "dest": indicators[(i * 7919) % distinct],
            "bytes": str(i * 13 % 100000),
        }
        for i in range(n)
    ]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def run(app_dir: Path, script: str, sd: Any, env: Dict[str, str], python: str,
        args: List[str], bodies: List[bytes]) -> Tuple[float, float, int]:  # fmt: skip
    """(seconds from launch to the last reply, peak RSS MB, records out)."""
    with tempfile.TemporaryDirectory() as dispatch:
        t0 = time.perf_counter()
        cmd = harness.CommandProcess(app_dir, python, env=env, script=script)
        info = cmd.getinfo(harness.searchinfo(args, sd.uri, dispatch))
        assert not info.messages, info.messages
        out = 0
        for i, body in enumerate(bodies):
            reply = cmd.execute_raw(body, finished=i == len(bodies) - 1)
            out += reply.body.count(b"\r\n") - 1
        elapsed = time.perf_counter() - t0
        rss = peak_rss_mb(cmd.proc.pid)
        rc = cmd.close()
        assert rc == 0, cmd.stderr()[-2000:]
    return elapsed, rss, out


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    n, distinct = (10_000, 1_000) if quick else (100_000, 10_000)
    python = getattr(sys, "_base_executable", "") or sys.executable
    work = Path(tempfile.mkdtemp(prefix="vtconnect-bench-splunk-"))
    emu = EmulatorThread()
    url = emu.start()
    try:
        tarball = build.build(work / "dist", log=lambda m: print(m, file=sys.stderr))
        app_dir = build.extract(tarball, work / "apps")
        shutil.copy(ROOT / "tests" / "splunk" / "noop_command.py", app_dir / "bin" / "noop.py")
        conf = {}
        import configparser

        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        cp.read(app_dir / "default" / "vtlookup.conf")
        conf = {s: dict(cp[s]) for s in cp.sections()}
        conf["virustotal"]["api_url"] = url
        conf["quota"]["tier"] = "unlimited"
        home = work / "splunk_home"
        env = harness.command_env(home)
        rows = events(n, distinct)
        bodies = [harness.records_to_csv(rows[i : i + 50_000]) for i in range(0, n, 50_000)]
        with harness.FakeSplunkd(conf=conf, passwords={"api_key": "b" * 64}) as sd:
            # Warm the cache: one search over the distinct indicators.
            uniq = [{"dest": d} for d in dict.fromkeys(r["dest"] for r in rows)]
            warm_bodies = [harness.records_to_csv(uniq[i : i + 50_000])
                           for i in range(0, len(uniq), 50_000)]  # fmt: skip
            warm_s, _, _ = run(app_dir, "vtlookup.py", sd, env, python, ["field=dest"], warm_bodies)
            noop: List[Tuple[float, float, int]] = []
            vt: List[Tuple[float, float, int]] = []
            kv: List[Tuple[float, float, int]] = []
            ttl = sd.conf["command"]["answers_ttl"]
            for _ in range(REPEATS):
                noop.append(run(app_dir, "noop.py", sd, env, python, [], bodies))
                sd.conf["command"]["answers_ttl"] = ttl
                vt.append(run(app_dir, "vtlookup.py", sd, env, python, ["field=dest"], bodies))
                sd.conf["command"]["answers_ttl"] = "0"  # the KV store answers every value
                kv.append(run(app_dir, "vtlookup.py", sd, env, python, ["field=dest"], bodies))
            kv_docs = len(sd.kv.get("vtconnect_cache", {}))
        noop_s, noop_rss, noop_out = min(noop)
        vt_s, vt_rss, vt_out = min(vt)
        kv_s, _, kv_out = min(kv)
        kv_rss = max(r[1] for r in kv)
        assert noop_out == n and vt_out == n and kv_out == n, (noop_out, vt_out, kv_out)
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "bench": "splunk_vtlookup",
        "quick": quick,
        "python": ".".join(map(str, sys.version_info[:3])),
        "events": n,
        "distinct_indicators": distinct,
        "chunks": len(bodies),
        "warmup_seconds": round(warm_s, 3),
        "kv_docs": kv_docs,
        "vtlookup_seconds": round(vt_s, 3),
        "vtlookup_events_per_s": round(n / vt_s),
        "noop_seconds": round(noop_s, 3),
        "noop_events_per_s": round(n / noop_s),
        "ratio_to_noop": round(noop_s / vt_s, 3),
        "ratio_target": 0.6,
        "peak_rss_mb": round(max(r[1] for r in vt), 1),
        "noop_peak_rss_mb": round(noop_rss, 1),
        "rss_target_mb": 200,
        "kvstore_only_events_per_s": round(n / kv_s),
        "kvstore_only_ratio_to_noop": round(noop_s / kv_s, 3),
        "kvstore_only_peak_rss_mb": round(kv_rss, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
