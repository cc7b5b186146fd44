"""The README promises Python 3.9 or newer for everything, not only the core: macOS's and RHEL 9's
python3 are 3.9. Here the servers themselves run under 3.9 with the runtime dependencies pip
resolves for it (aiohttp 3.13 there: no web.RequestKey), and answer over a real socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
PYTHON39 = PYENV_ROOT / "versions" / "3.9.18" / "bin" / "python3.9"
COLLECTION = "5e1f3a2b-9c4d-4e8f-a1b2-c3d4e5f60718"


def _runtime_deps() -> Path:
    """The project's runtime dependencies installed once for Python 3.9, next to the venv."""
    lib = ROOT / ".venv" / "runtime-deps-3.9"
    if not (lib / ".complete").exists():
        deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        r = subprocess.run(
            [str(PYTHON39), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--target", str(lib), *deps],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        # A dependency that needs a newer Python is our bug; a registry out of reach is not.
        assert "require a different python version" not in r.stderr, r.stderr[-1500:]
        if r.returncode != 0:
            pytest.skip(f"cannot install runtime dependencies for 3.9: {r.stderr[-500:]}")
        (lib / ".complete").write_text("ok")
    return lib


def test_servers_run_under_python39(tmp_path, emulator_url):
    if not PYTHON39.exists():
        pytest.skip(f"Python 3.9 is not installed at {PYTHON39}")
    lib = _runtime_deps()
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        "[taxii]\nport = 0\n"
        f'store = "{tmp_path / "taxii.db"}"\n'
        f'[[taxii.collections]]\nid = "{COLLECTION}"\ntitle = "Public"\npublic = true\n'
        "[webhook]\nport = 0\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{lib}",
        PYTHONNOUSERSITE="1",
        VT_API_URL=emulator_url,
        VT_API_KEY="k",
        XDG_STATE_HOME=str(tmp_path),
    )
    proc = subprocess.Popen(
        [str(PYTHON39), "-m", "connectors.cli", "--config", str(cfg), "serve", "--taxii",
         "--webhook"],
        env=env, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
    )  # fmt: skip
    try:
        urls, seen = {}, []
        while len(urls) < 2:
            line = proc.stderr.readline()
            assert line, "the server exited under Python 3.9:\n" + "".join(seen)[-3000:]
            seen.append(line)
            if "listening on" in line:
                part = line.split(" listening on ")[0].rsplit(" ", 1)[-1]
                urls[part] = line.strip().rsplit(" ", 1)[-1]
        with urllib.request.urlopen(urls["taxii"] + "/taxii2/", timeout=10) as resp:
            assert json.load(resp)["default"].endswith("/api/")
        with urllib.request.urlopen(urls["webhook"] + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
