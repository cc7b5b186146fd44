"""Two `vtconnect serve --taxii` processes, each with its own state dir, sharing one PostgreSQL
database ([core] database): what one replica stores, the other serves, and a `next` token
issued by one pages on the other. A replica refuses a schema newer than it knows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

from connectors.core import database
from taxii.config import hash_password

from .conftest import INBOX, PASSWORD
from .test_server import MEDIA, http, indicators


def write_config(path: Path) -> Path:
    path.write_text(
        "[taxii]\nport = 0\npage_size = 7\n"
        f'[[taxii.collections]]\nid = "{INBOX}"\ntitle = "Inbox"\n'
        'read = ["analyst"]\nwrite = ["analyst"]\n'
        f'[[taxii.users]]\nname = "analyst"\npassword_hash = "{hash_password(PASSWORD, 1000)}"\n'
    )
    return path


EXE = os.path.join(os.path.dirname(sys.executable), "vtconnect")


def replica_env(cfg: Path, state: Path, db: str, emulator_url: str) -> dict:
    return dict(os.environ, VTCONNECT_CONFIG=str(cfg), VTCONNECT_DATABASE=db,
                VT_API_URL=emulator_url, VT_API_KEY="k", XDG_STATE_HOME=str(state))  # fmt: skip


def replica(cfg: Path, state: Path, db: str, emulator_url: str) -> Tuple[subprocess.Popen, str]:
    env = replica_env(cfg, state, db, emulator_url)
    proc = subprocess.Popen([EXE, "serve", "--taxii"], env=env, stderr=subprocess.PIPE, text=True)
    line = ""
    for _ in range(50):
        line = proc.stderr.readline()
        if "listening on" in line or not line:
            break
    return proc, line.strip().rsplit(" ", 1)[-1]


def test_two_replicas_share_objects_and_next_tokens(tmp_path, pg_database, emulator_url):
    cfg = write_config(tmp_path / "vtconnect.toml")
    procs: List[Tuple[subprocess.Popen, str]] = []
    try:
        for name in ("a", "b"):  # inside try: a first one started is stopped if b fails
            procs.append(replica(cfg, tmp_path / name, pg_database, emulator_url))
        (a, url_a), (b, url_b) = procs
        assert url_a.startswith("http://") and url_b.startswith("http://"), (url_a, url_b)
        objects = f"/api/collections/{INBOX}/objects/"
        body = json.dumps({"objects": indicators(30)}).encode()
        status, _, raw = http(url_a + objects, "POST", body, {"Content-Type": MEDIA})
        assert status == 202 and json.loads(raw)["success_count"] == 30
        body = json.dumps({"objects": indicators(10, start=100)}).encode()
        assert http(url_b + objects, "POST", body, {"Content-Type": MEDIA})[0] == 202
        seen: List[str] = []
        query, turn = "", 0
        while True:  # alternate replicas page by page, each continuing the other's token
            status, _, raw = http((url_a, url_b)[turn % 2] + objects + query)
            assert status == 200, raw
            page = json.loads(raw)
            seen += [o["id"] for o in page.get("objects", [])]
            turn += 1
            if not page.get("more"):
                break
            query = "?next=" + page["next"]
        assert turn >= 6 and len(seen) == len(set(seen)) == 40
        stamps = []
        for url in (url_a, url_b):  # the same stamps on both: one date_added per object
            status, headers, _ = http(url + objects + "?limit=1")
            stamps.append(headers["X-TAXII-Date-Added-First"])
        assert stamps[0] == stamps[1]
        # neither replica wrote a SQLite store of its own
        assert not list(tmp_path.glob("*/vtconnect/taxii.db"))
    finally:
        for proc, _ in procs:
            proc.terminate()
        codes = [proc.wait(15) for proc, _ in procs]
    assert codes == [0, 0]


def test_a_replica_refuses_a_newer_schema(tmp_path, pg_database, emulator_url):
    from taxii.store import open_store
    from taxii.store.postgres import SCHEMA

    open_store(pg_database).close()
    conn = database.connect(pg_database)
    conn.execute("UPDATE vtconnect_schema SET version = version + 1 WHERE component = 'taxii'")
    conn.close()
    env = replica_env(write_config(tmp_path / "c.toml"), tmp_path, pg_database, emulator_url)
    done = subprocess.run([EXE, "serve", "--taxii"], env=env, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, err
    known = SCHEMA.version
    said = f"schema for taxii is version {known + 1}, newer than this vtconnect knows ({known})"
    assert said in err[0]
