"""Fixtures for the Splunk app tests: the app built once per session (vendored lib cached under
build/), a fake splunkd per test, and interpreters like Splunk's."""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional

import pytest

from .harness import FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
INTERPRETERS = {
    "3.7": PYENV_ROOT / "versions" / "3.7.16" / "bin" / "python3.7",  # Splunk 9.0-9.2
    "3.9": PYENV_ROOT / "versions" / "3.9.18" / "bin" / "python3.9",
    "3.13": PYENV_ROOT / "versions" / "3.13.0" / "bin" / "python3.13",
}
API_KEY = "a" * 64


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_splunk_build_for_tests", ROOT / "packaging" / "splunk_build.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def base_python() -> str:
    """The running interpreter without our venv's site-packages (splunkd's python has none)."""
    return getattr(sys, "_base_executable", "") or sys.executable


def interpreter(version: str) -> str:
    path = INTERPRETERS[version]
    if not path.exists():
        pytest.skip(f"Python {version} not installed at {path} (Splunk {version} interpreter)")
    return str(path)


class BuiltApp:
    def __init__(self, tarball: Path, app_dir: Path) -> None:
        self.tarball = tarball
        self.app_dir = app_dir

    def default_conf(self) -> Dict[str, Dict[str, str]]:
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        cp.read(self.app_dir / "default" / "vtlookup.conf", encoding="utf-8")
        return {s: dict(cp[s]) for s in cp.sections()}


@pytest.fixture(scope="session")
def built_app(tmp_path_factory: pytest.TempPathFactory) -> BuiltApp:
    build = load_build()
    if not build.python39():
        pytest.skip("Python 3.9 not found: the app's lib/ is resolved with Splunk 9.x's 3.9")
    out = tmp_path_factory.mktemp("dist")
    tarball = build.build(out, log=lambda m: None)
    app_dir = build.extract(tarball, tmp_path_factory.mktemp("apps"))
    return BuiltApp(tarball, app_dir)


def conf_for(
    app: BuiltApp, emulator_url: str, overrides: Optional[Dict[str, Dict[str, str]]] = None
) -> Dict[str, Dict[str, str]]:
    """The app's shipped vtlookup.conf pointed at an emulator, as splunkd would serve it."""
    conf = app.default_conf()
    conf["virustotal"]["api_url"] = emulator_url
    conf["privacy"]["allow_documentation_ranges"] = "true"  # the emulator's sample addresses
    conf["quota"]["tier"] = "unlimited"
    for section, keys in (overrides or {}).items():
        conf.setdefault(section, {}).update(keys)
    return conf


@pytest.fixture
def splunkd(built_app: BuiltApp, emulator_url: str):
    with FakeSplunkd(conf=conf_for(built_app, emulator_url), passwords={"api_key": API_KEY}) as sd:
        yield sd


@pytest.fixture
def splunk_home(tmp_path: Path) -> Path:
    home = tmp_path / "splunk_home"
    (home / "var" / "log" / "splunk").mkdir(parents=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)
