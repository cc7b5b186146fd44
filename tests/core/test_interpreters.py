"""connectors.core must import and run on Splunk's interpreters: Python 3.9 (Splunk 9.x) and
3.13 (Splunk 10.x). Each runs a real enrichment against the emulator over a socket."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from connectors.emulator.server import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
INTERPRETERS = {
    "3.9": PYENV_ROOT / "versions" / "3.9.18" / "bin" / "python3.9",
    "3.13": PYENV_ROOT / "versions" / "3.13.0" / "bin" / "python3.13",
}
CORE_DEPS = ["vt-py>=0.22,<0.23", "tomli>=2", "tldextract>=5", "idna>=3.7"]

SCRIPT = r"""
import asyncio, json, sys, tempfile
from connectors.core import config
from connectors.core.enricher import Enricher
from connectors.core import database  # PostgreSQL support imports without psycopg

async def main(url):
    with tempfile.TemporaryDirectory() as state:
        s = config.for_emulator(config.from_mapping({}, env={}), url, state)
        e = Enricher(s, connector="interp")
        values = ["44d88612fea8a8f36de82e1278abb02f", "10.0.0.1", "example.com", "junk value"]
        out = await e.enrich(values)
        await e.aclose()
        e.close()
    from connectors.core.observable import parse
    names = [parse(v).value for v in ("straße.de", "xn--strae-oqa.de", "HTTP://Example.com:80")]
    print(json.dumps({"python": sys.version_info[:2], "verdicts": [r.verdict.value for r in out],
                      "names": names}))

asyncio.run(main(sys.argv[1]))
"""


def _lib_for(version: str, python: Path) -> Path:
    """Core dependencies installed for that interpreter, once, next to the venv."""
    lib = ROOT / ".venv" / f"core-deps-{version}"
    marker = lib / ".complete"
    if not marker.exists() or marker.read_text() != " ".join(CORE_DEPS):
        r = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--upgrade",
                "--target",
                str(lib),
                *CORE_DEPS,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot install core dependencies for Python {version}: {r.stderr[-500:]}")
        marker.write_text(" ".join(CORE_DEPS))  # new dependencies: installed again
    return lib


@pytest.fixture(scope="module")
def emulator_url():
    emu = EmulatorThread()
    url = emu.start()
    yield url
    emu.stop()


@pytest.mark.parametrize("version", sorted(INTERPRETERS))
def test_core_runs_under(version, emulator_url):
    python = INTERPRETERS[version]
    if not python.exists():
        pytest.skip(f"Python {version} is not installed at {python}")
    lib = _lib_for(version, python)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{lib}", PYTHONNOUSERSITE="1")
    r = subprocess.run(
        [str(python), "-c", SCRIPT, emulator_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=str(ROOT),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["python"] == [int(x) for x in version.split(".")]
    assert out["verdicts"] == ["malicious", "skipped", "harmless", "skipped"]
    assert out["names"] == ["xn--strae-oqa.de", "xn--strae-oqa.de", "http://example.com/"]
