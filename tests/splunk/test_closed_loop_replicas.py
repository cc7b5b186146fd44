"""The closed loop across hosts: two `vtconnect serve --taxii --webhook` replicas (separate state
dirs, one real PostgreSQL database, the emulator as VirusTotal). A `vtconnect lookup` on one
host and a `| vtlookup` search in remote mode (the Splunk harness, through replica A's
/v1/enrich) each find a malicious value; the publisher, woken by the verdict log's NOTIFY (its
poll is an hour), publishes both once, and a TAXII client pages the feed starting on replica A
and continuing with each `next` token on replica B."""

from __future__ import annotations

import hashlib
from itertools import count

from taxii2client.v21 import Collection, as_pages

from tests.processes import Served, no_traceback, run

from ..scale.test_publisher_replicas import (
    DOMAIN,
    EICAR,
    RUNNING,
    env,
    lock_holders,
    published,
    until,
    write_config,
)
from ..taxii.conftest import FEED, PASSWORD
from .conftest import base_python
from .harness import ANALYST_KEY, FakeSplunkd
from .test_remote_hub import TOKEN, remote_conf, searched
from .test_vtlookup import by_value

HUB_CLIENT = "splunk-shc"


def hub_config(path):
    """The replicas' TAXII feed (test_publisher_replicas) and a hub client for the search head."""
    write_config(path)
    with open(path, "a") as out:
        out.write(
            "[webhook]\nport = 0\n"
            f'[[api.clients]]\nname = "{HUB_CLIENT}"\n'
            f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
        )
    return path


def test_a_cli_and_a_splunk_verdict_are_published_once_and_page_across_replicas(
    tmp_path,
    pg_database,
    emulator_url,
    built_app,
    splunk_home,
):
    cfg = hub_config(tmp_path / "vtconnect.toml")
    envs = {name: env(cfg, tmp_path / name, pg_database, emulator_url) for name in "ab"}
    replicas = {}
    try:
        for name in "ab":
            replicas[name] = Served(["serve", "--taxii", "--webhook"], envs[name],
                                    tmp_path / f"{name}.log")  # fmt: skip
        urls = {name: r.wait_listening(2) for name, r in replicas.items()}
        until(lambda: lock_holders(pg_database), "a replica running the publisher")

        # A CLI on host A, with the same [core] database.
        done = run(["lookup", EICAR], envs["a"])
        assert done.returncode == 0, done.stderr
        # A Splunk search head in remote mode: its values go to replica A's /v1/enrich.
        with FakeSplunkd(
            conf=remote_conf(built_app, urls["a"]["webhook"]), passwords={"remote_token": TOKEN},
            app_dir=built_app.app_dir, python=base_python(),
        ) as sd:  # fmt: skip
            _, replies = searched(built_app, sd, splunk_home, [[{"dest": DOMAIN}]], ANALYST_KEY)
            assert not sd.handler_errors, sd.handler_errors
        got = by_value([r for reply in replies for r in reply.records])
        assert got[DOMAIN]["vt_verdict"] == "malicious", got

        # Published without any poll: the verdict log's NOTIFY wakes the runner.
        until(lambda: published(urls["b"]["taxii"], EICAR) and
              published(urls["b"]["taxii"], DOMAIN), "both verdicts published")  # fmt: skip

        collections = {
            name: Collection(
                f"{u['taxii']}/api/collections/{FEED}/", user="analyst", password=PASSWORD
            )  # fmt: skip
            for name, u in urls.items()
        }
        turns, asked = count(), []

        def get_objects(**kwargs):
            """The first page from replica A, every next one from B with A's (then B's) token."""
            name = "a" if next(turns) == 0 else "b"
            asked.append((name, "next" in kwargs))
            return collections[name].get_objects(**kwargs)

        pages = list(as_pages(get_objects, per_request=1, type="indicator"))
        assert asked[0] == ("a", False) and asked[1:] == [("b", True)] * (len(asked) - 1)
        assert len(pages) >= 2 and all(len(p.get("objects", [])) <= 1 for p in pages)
        objects = [o for p in pages for o in p.get("objects", [])]
        ids = [o["id"] for o in objects]
        assert len(ids) == len(set(ids)), ids
        for value in (EICAR, DOMAIN):  # exactly once: not published by both replicas
            assert len([o for o in objects if value in o["pattern"]]) == 1, (value, objects)

        # One runner: one lock holder, and one replica's log says it ran the publisher.
        (holder,) = lock_holders(pg_database)
        runners = [n for n, r in replicas.items() if RUNNING in r.log()]
        assert len(runners) == 1 and holder.endswith(f":{replicas[runners[0]].pid}"), holder
        for name in "ab":
            assert replicas[name].stop() == 0
            assert no_traceback(replicas[name].log()) is None, replicas[name].log()
    finally:
        for r in replicas.values():
            r.stop()
