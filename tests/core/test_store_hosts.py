"""Hosts sharing one PostgreSQL core store ([core] database), as real processes: each
`vtconnect lookup` has a state dir of its own (another host's disk) and only the database in
common. A cold value asked on two hosts at once costs one VirusTotal call; what one host
learnt is a cache hit on the other; both see one verdict log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import psycopg

from connectors.core.config import CacheSettings
from connectors.core.store import open_cache
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator
from tests.processes import Served, no_traceback

VTCONNECT = os.path.join(os.path.dirname(sys.executable), "vtconnect")
GET = "GET /api/v3/{collection}/{id}"


def host_env(tmp_path: Path, name: str, url: str, database: str) -> dict:
    home = tmp_path / name
    home.mkdir()
    cfg = home / "vtconnect.toml"
    cfg.write_text(f'[core]\nstate_dir = "{home / "state"}"\n[quota]\ntier = "unlimited"\n')
    return dict(os.environ, VT_API_URL=url, VT_API_KEY="k", VTCONNECT_CONFIG=str(cfg),
                VTCONNECT_DATABASE=database)  # fmt: skip


async def calls(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + "/_emulator/counters") as r:
        return (await r.json())["by_endpoint"].get(GET, 0)


async def lookup(env: dict, *args: str):
    proc = await asyncio.create_subprocess_exec(
        VTCONNECT, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_two_hosts_ask_one_cold_value_at_once_and_cost_one_call(tmp_path, pg_database):
    # Answers take 1.5 s, longer than the processes take to start: both ask while it is out.
    async with running_emulator(EmulatorConfig(faults={"latency_ms": 1500})) as emu:
        value = "c" * 64
        a = host_env(tmp_path, "a", emu.url, pg_database)
        b = host_env(tmp_path, "b", emu.url, pg_database)
        outs = await asyncio.gather(*(lookup(env, "lookup", "--format", "json", value)
                                      for env in (a, b)))  # fmt: skip
        results = [json.loads(out)[0] for out, _ in outs]
        assert {r["verdict"] for r in results} != {"error"}
        assert len({r["verdict"] for r in results}) == 1
        assert await calls(emu.url) == 1
        # Host b learnt it too: asked again there, it is a hit.
        out, _ = await lookup(b, "lookup", "--format", "json", value)
        assert json.loads(out)[0]["cached"] and await calls(emu.url) == 1
        # Nothing of the cache went to either host's disk.
        for home in ("a", "b"):
            assert not (tmp_path / home / "state" / "cache.db").exists()
        out, _ = await lookup(a, "cache", "stats", "--json")
        stats = json.loads(out)
        assert stats["entries"] == 1 and stats["path"].startswith("postgresql://")
    store = open_cache(pg_database, CacheSettings())
    try:
        logged = [r.value for _, r in store.log_after(0)]
        assert logged and set(logged) == {value}  # one log shared by both hosts
    finally:
        store.close()


async def test_a_host_refuses_a_newer_cache_schema_in_one_line(tmp_path, pg_database):
    open_cache(pg_database, CacheSettings()).close()
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("UPDATE vtconnect_schema SET version = 99 WHERE component = 'cache'")
    env = host_env(tmp_path, "a", "http://127.0.0.1:9", pg_database)
    proc = await asyncio.create_subprocess_exec(
        VTCONNECT, "lookup", "example.com", env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    _, err = await proc.communicate()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, err.decode()
    assert "cache is version 99, newer than this vtconnect knows" in lines[0]


async def test_two_serve_replicas_asked_one_cold_value_at_once_cost_one_call(tmp_path, pg_database):
    """Two `vtconnect serve --webhook` replicas (hubs) behind a load balancer: a client asks one,
    another client the other, the same value at the same moment."""
    token = "replica-client-token-0123456789"
    async with running_emulator(EmulatorConfig(faults={"latency_ms": 1500})) as emu:
        replicas = []
        try:
            for name in ("a", "b"):
                env = host_env(tmp_path, name, emu.url, pg_database)
                with open(env["VTCONNECT_CONFIG"], "a") as f:
                    f.write(
                        f'[webhook]\nport = 0\n[[api.clients]]\nname = "soc-{name}"\n'
                        f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
                    )
                replicas.append(Served(["serve", "--webhook"], env, tmp_path / name / "serve.log"))
            urls = [r.wait_listening(1)["webhook"] for r in replicas]
            value = "d" * 64
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession() as s:

                async def ask(url: str):
                    async with s.post(url + "/v1/enrich", json={"values": [value]},
                                      headers=headers) as r:  # fmt: skip
                        assert r.status == 200, await r.text()
                        return (await r.json())["results"][0]

                answers = await asyncio.gather(*(ask(u) for u in urls))
            assert len({a["verdict"] for a in answers}) == 1 and answers[0]["verdict"] != "error"
            assert await calls(emu.url) == 1
        finally:
            for r in replicas:
                r.stop()
        for r in replicas:
            assert no_traceback(r.log()) is None, r.log()[-4000:]
    store = open_cache(pg_database, CacheSettings())
    try:  # each replica logged its client's verdict in the one shared log
        assert {r.connector for _, r in store.log_after(0)} == {"soc-a", "soc-b"}
    finally:
        store.close()
