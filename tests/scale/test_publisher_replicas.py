"""Two `vtconnect serve --taxii` replicas (separate state dirs, one real PostgreSQL database):
the verdict-log publisher runs on exactly one of them, wakes on a NOTIFY on
`vtconnect_verdicts` (poll_seconds is an hour here: nothing else starts a pass), and moves to
the other replica when the one running it is SIGKILLed. Each replica says its role on stderr;
the database shows which session holds the publisher lock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg

from taxii.config import hash_password
from taxii.publisher import CHANNEL, LOCK_PUBLISHER
from tests.processes import Served, no_traceback, run

from ..taxii.conftest import FEED, PASSWORD
from ..taxii.test_server import http

EICAR = "44d88612fea8a8f36de82e1278abb02f"
DOMAIN = "malware.wicar.org"  # the emulator calls it malicious
RUNNING, STANDBY = "publisher running on this replica", "publisher standing by"


def write_config(path: Path) -> Path:
    path.write_text(
        '[quota]\ntier = "unlimited"\n'
        "[taxii]\nport = 0\npoll_seconds = 3600\n"
        f'[[taxii.collections]]\nid = "{FEED}"\ntitle = "VirusTotal malicious"\n'
        'read = ["analyst"]\npublish = ["malicious"]\ntest = true\n'
        f'[[taxii.users]]\nname = "analyst"\npassword_hash = "{hash_password(PASSWORD, 1000)}"\n'
    )
    return path


def env(cfg: Path, state: Path, db: str, emulator_url: str) -> dict:
    import os

    return dict(os.environ, VTCONNECT_CONFIG=str(cfg), VTCONNECT_DATABASE=db,
                VT_API_URL=emulator_url, VT_API_KEY="k", XDG_STATE_HOME=str(state))  # fmt: skip


def lock_holders(db: str) -> list:
    with psycopg.connect(db, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s", (LOCK_PUBLISHER,),
        ).fetchall()]  # fmt: skip


def notify(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}")


def shared_verdict_log(db: str) -> bool:
    """Whether the core keeps its verdict log in this database (else each host has its own)."""
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('cache_verdict_log')").fetchone()[0] is not None


def until(check, what: str, tries: int = 600):
    for _ in range(tries):
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not reached: {what}")


def published(url: str, value: str) -> list:
    status, _, raw = http(f"{url}/api/collections/{FEED}/objects/?match[type]=indicator")
    assert status == 200, raw
    return [o for o in json.loads(raw).get("objects", []) if value in o["pattern"]]


def test_the_publisher_runs_on_one_replica_and_moves_when_it_is_killed(
    tmp_path, pg_database, emulator_url
):
    cfg = write_config(tmp_path / "vtconnect.toml")
    envs = {name: env(cfg, tmp_path / name, pg_database, emulator_url) for name in "ab"}
    replicas = {}
    try:
        for name in "ab":
            replicas[name] = Served(["serve", "--taxii"], envs[name], tmp_path / f"{name}.log")
        urls = {name: r.wait_listening(1)["taxii"] for name, r in replicas.items()}

        def roles():
            said = {n: (RUNNING in r.log(), STANDBY in r.log()) for n, r in replicas.items()}
            runner = [n for n, (running, _) in said.items() if running]
            standby = [n for n, (running, stands) in said.items() if stands and not running]
            return (runner[0], standby[0]) if len(runner) == 1 and len(standby) == 1 else None

        first, second = until(roles, "one replica running the publisher, one standing by")
        (holder,) = lock_holders(pg_database)
        assert holder.endswith(f":{replicas[first].proc.pid}"), holder
        # A verdict on the runner's host is published on the NOTIFY, and read on either replica.
        assert run(["lookup", EICAR], envs[first]).returncode == 0
        notify(pg_database)
        until(lambda: published(urls[second], EICAR), "EICAR published")
        assert published(urls[first], EICAR) == published(urls[second], EICAR)

        replicas[first].proc.kill()  # SIGKILL: no shutdown, the session just drops
        replicas[first].proc.wait(15)
        until(lambda: RUNNING in replicas[second].log(), "the other replica taking over")
        holders = until(lambda: lock_holders(pg_database), "a lock holder")
        assert len(holders) == 1 and holders[0].endswith(f":{replicas[second].proc.pid}")
        if shared_verdict_log(pg_database):
            # The new runner publishes what any host logs (the CLI on the dead replica's host).
            assert run(["lookup", DOMAIN], envs[first]).returncode == 0
            notify(pg_database)
            until(lambda: published(urls[second], DOMAIN), "the domain published by the new runner")
        assert replicas[second].stop() == 0
        for r in replicas.values():
            assert no_traceback(r.log()) is None, r.log()
        assert replicas[second].log().count(RUNNING) == 1
    finally:
        for r in replicas.values():
            r.stop()
