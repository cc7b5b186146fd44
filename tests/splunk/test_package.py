"""The built tarball: layout, purity, permissions, the CLI, and AppInspect's Cloud checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.cli.splunk import splunk

from .conftest import BuiltApp

KEPT = "/lib/tldextract/.tld_set_snapshot"  # data tldextract loads by this name


def test_tarball_is_clean(built_app: BuiltApp) -> None:
    with tarfile.open(built_app.tarball) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert all(n == "vtconnect" or n.startswith("vtconnect/") for n in names)
    for required in (
        "vtconnect/default/app.conf",
        "vtconnect/default/commands.conf",
        "vtconnect/default/collections.conf",
        "vtconnect/metadata/default.meta",
        "vtconnect/bin/vtlookup.py",
        "vtconnect/lib/connectors/__init__.py",
        "vtconnect/lib/connectors/core/enricher.py",
        "vtconnect/lib/connectors/core/ledger/sqlite.py",  # sub-packages of the core too
        "vtconnect/lib/connectors/core/store/sqlite.py",
        "vtconnect/lib/splunklib/searchcommands/__init__.py",
        "vtconnect/lib/vt/client.py",
        "vtconnect/lib/aiohttp/client.py",
    ):
        assert required in names, required
    bad = [
        n
        for n in names
        if "__pycache__" in n
        or any(part.startswith(".") for part in n.split("/"))
        and not n.endswith(KEPT)
        or n.endswith((".so", ".pyd", ".pyc", ".dylib", ".exe"))
        or "/local/" in n
    ]
    assert bad == []
    for m in members:
        assert m.mode == (0o755 if m.isdir() else 0o644), (m.name, oct(m.mode))
        assert m.uid == 0 and m.gid == 0
    assert not any(m.issym() or m.islnk() for m in members)


def test_cli_build_prints_the_tarball(tmp_path: Path, built_app: BuiltApp) -> None:
    result = CliRunner().invoke(splunk, ["build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == tmp_path / built_app.tarball.name
    assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_appinspect_cloud_has_no_failures(built_app: BuiltApp, tmp_path: Path) -> None:
    exe = shutil.which("splunk-appinspect", path=str(Path(sys.executable).parent))
    if not exe:
        pytest.skip("splunk-appinspect is not installed in this environment")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            exe,
            "inspect",
            str(built_app.tarball),
            "--mode",
            "precert",
            "--included-tags",
            "cloud",
            "--skip-trusted-libraries-update",
            "--data-format",
            "json",
            "--output-file",
            str(report),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(report.read_text())["summary"]
    failed = []
    for group in json.loads(report.read_text())["reports"][0]["groups"]:
        for check in group["checks"]:
            if check["result"] in ("failure", "error"):
                failed.append((check["name"], [m["message"] for m in check["messages"]]))
    assert summary["failure"] == 0 and summary["error"] == 0, failed
    assert summary["success"] > 50  # it really ran the checks


def test_version_claims_agree(built_app: BuiltApp) -> None:
    import configparser

    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.read(built_app.app_dir / "default" / "app.conf", encoding="utf-8")
    manifest = json.loads((built_app.app_dir / "app.manifest").read_text())
    assert manifest["info"]["id"]["version"] == cp["launcher"]["version"] == cp["id"]["version"]
    assert manifest["platformRequirements"]["splunk"]["Enterprise"] == ">=9.3"
    commands = configparser.ConfigParser(interpolation=None, strict=False)
    commands.read(built_app.app_dir / "default" / "commands.conf", encoding="utf-8")
    assert commands["vtlookup"]["python.required"] == "3.9, 3.13"
