"""Build the Splunk app tarball: dist/<app_id>-<version>.tar.gz.

The app source (splunk_app/) is staged with a vendored lib/: connectors.core copied from this
checkout plus splunklib, vt-py and their dependencies installed as pure Python by the Python 3.9
interpreter (Splunk 9.x), so the same lib/ runs on 3.9 and 3.13 and AppInspect finds no compiled
code. The vendored third-party part is cached under build/ keyed by a hash of what goes into it.

Loaded by path (this folder is not a Python package: `packaging` would shadow pip's library).
"""

from __future__ import annotations

import configparser
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
APP_SRC = ROOT / "splunk_app"
CORE_SRC = ROOT / "connectors" / "core"
BUILD = ROOT / "build"

# Top-level pins; pip resolves the rest for Python 3.9. Keep in step with pyproject.toml.
REQUIREMENTS = (
    "splunk-sdk==2.1.1",
    "vt-py==0.22.0",
    "tomli>=2,<3",
    "tldextract==5.3.0",  # 5.3.1+ needs Python 3.10
    "idna>=3.7,<4",  # IDNA 2008 / UTS 46 host names (connectors.core.observable)
)
# Not vendored: ioc-finder (9.x needs Python 3.10; connectors.core.extract does not use it).
# Packages with optional C speedups: build them from source with the speedups switched off.
NO_BINARY = ("aiohttp", "multidict", "yarl", "frozenlist", "propcache", "charset-normalizer")
PURE_ENV = {
    "AIOHTTP_NO_EXTENSIONS": "1",
    "MULTIDICT_NO_EXTENSIONS": "1",
    "YARL_NO_EXTENSIONS": "1",
    "FROZENLIST_NO_EXTENSIONS": "1",
    "PROPCACHE_NO_EXTENSIONS": "1",
    "CHARSET_NORMALIZER_USE_MYPYC": "0",
}
COMPILED_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".pyc", ".pyo", ".exe")
# The one dotfile kept: tldextract loads its offline public suffix snapshot by this name.
KEEP_DOTFILES = frozenset({"tldextract/.tld_set_snapshot"})
# Not needed at run time and noisy for AppInspect.
DROP_DIRS = {"__pycache__", "bin", "tests", "test"}


class BuildError(RuntimeError):
    """The app could not be built; the message says why."""


def python39() -> Optional[str]:
    """The Python 3.9 interpreter used to resolve lib/ (env VTCONNECT_PY39 or pyenv's)."""
    candidates = [os.environ.get("VTCONNECT_PY39", "")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates.append(os.path.join(pyenv_root, "versions", "3.9.18", "bin", "python3.9"))
    candidates.append(shutil.which("python3.9") or "")
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def app_conf() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(APP_SRC / "default" / "app.conf", encoding="utf-8")
    return cp


def app_id_and_version() -> Tuple[str, str]:
    cp = app_conf()
    try:
        return cp["package"]["id"].strip(), cp["launcher"]["version"].strip()
    except KeyError as exc:
        raise BuildError(f"splunk_app/default/app.conf lacks {exc}") from None


def vendor_key(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    )
    h = hashlib.sha256()
    for part in (*REQUIREMENTS, "|", *NO_BINARY, "|", *sorted(PURE_ENV.items()), out.stdout):
        h.update(str(part).encode() + b"\0")
    return h.hexdigest()[:16]


def vendored_lib(python: Optional[str] = None, log=print) -> Path:  # noqa: ANN001
    """Third-party lib/ (no connectors.core), installed once per dependency hash."""
    python = python or python39()
    if not python:
        raise BuildError(
            "Python 3.9 not found (set VTCONNECT_PY39 or install 3.9.18 with pyenv); lib/ must "
            "be resolved for Splunk's oldest interpreter"
        )
    target = BUILD / "splunk-vendor" / vendor_key(python)
    if (target / ".complete").exists():
        return target / "lib"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vendor-", dir=target.parent))
    env = {**os.environ, **PURE_ENV, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [python, "-m", "pip", "install", "-q", "--no-compile", "--target", str(tmp / "lib")]
    cmd += ["--no-binary", ",".join(NO_BINARY), *REQUIREMENTS]
    log(f"vendoring {', '.join(REQUIREMENTS)} with {python} (cached afterwards)")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"pip failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    _prune(tmp / "lib")
    compiled = [str(p) for p in (tmp / "lib").rglob("*") if p.suffix in COMPILED_SUFFIXES]
    if compiled:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"compiled files in vendored lib: {compiled[:5]}")
    (tmp / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target / "lib"


def _prune(lib: Path) -> None:
    for p in sorted(lib.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not p.exists():
            continue
        if p.is_dir() and (p.name in DROP_DIRS and p.parent == lib or p.name == "__pycache__"):
            shutil.rmtree(p)
        elif p.is_file() and p.suffix in (".pyc", ".pyo"):
            p.unlink()


def _skip(rel: Path) -> bool:
    parts = rel.parts
    return (
        any(part.startswith(".") or part == "__pycache__" for part in parts)
        or parts[0] in ("lib", "local")
        or rel.suffix in COMPILED_SUFFIXES
        or rel.name == "local.meta"
    )


def _files(app_id: str, lib: Path) -> Iterator[Tuple[str, Path]]:
    """(archive name, source file) for everything in the app, sorted."""
    entries: Dict[str, Path] = {}
    for p in APP_SRC.rglob("*"):
        rel = p.relative_to(APP_SRC)
        if p.is_file() and not _skip(rel):
            entries[f"{app_id}/{rel.as_posix()}"] = p
    for p in lib.rglob("*"):
        rel = p.relative_to(lib)
        hidden = any(x.startswith(".") or x == "__pycache__" for x in rel.parts)
        if p.is_file() and (not hidden or rel.as_posix() in KEEP_DOTFILES):
            entries[f"{app_id}/lib/{rel.as_posix()}"] = p
    for p in CORE_SRC.rglob("*.py"):  # with its sub-packages (store/, ledger/)
        rel = p.relative_to(CORE_SRC)
        if "__pycache__" not in rel.parts:
            entries[f"{app_id}/lib/connectors/core/{rel.as_posix()}"] = p
    for name, p in sorted(entries.items()):
        yield name, p


def build(out_dir: Optional[Path] = None, python: Optional[str] = None, log=print) -> Path:  # noqa: ANN001
    """Build the app tarball into out_dir (default dist/) and return its path."""
    app_id, version = app_id_and_version()
    lib = vendored_lib(python, log=log)
    out_dir = Path(out_dir) if out_dir else ROOT / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{app_id}-{version}.tar.gz"
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    dirs: List[str] = []
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = list(_files(app_id, lib))
        files.append((f"{app_id}/lib/connectors/__init__.py", Path(os.devnull)))
        for name, _ in sorted(files):
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.append(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(info)
        for name, src in sorted(files):
            data = b"" if str(src) == os.devnull else src.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    tmp = target.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=mtime) as gz:
        gz.write(raw.getvalue())
    tmp.replace(target)
    return target


def extract(tarball: Path, dest: Path) -> Path:
    """Unpack a built app (e.g. to run it in tests) and return the app directory."""
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        if any(n.startswith("/") or ".." in n.split("/") for n in names):
            raise BuildError(f"unsafe path in {tarball}")
        if sys.version_info >= (3, 12):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / names[0].split("/")[0]


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
