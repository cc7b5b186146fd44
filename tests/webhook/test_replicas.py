"""Two `vtconnect serve --webhook` replicas, each with its own state dir, sharing one PostgreSQL
database ([core] database), as behind a load balancer: 1,000 asynchronous alerts posted to them
alternately, one replica SIGKILLed a third of the way and never restarted. The survivor takes
over the dead one's claimed jobs and callbacks once their lease runs out: every accepted alert is
enriched and called back, each under one webhook-id; the only repeat allowed is the delivery in
flight at the kill (a replica sends callbacks one at a time)."""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import subprocess
import sys
from typing import Dict, List

import aiohttp
from aiohttp import web

from connectors.core import database
from connectors.webhook import auth

TOKEN = "replica-token-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"replica-callback-key-0123456789").decode()
N = 1000
LEASE = 5.0  # seconds; a live replica finishes a claimed batch well within it


def start_replica(cfg, env) -> tuple[subprocess.Popen, str]:
    exe = os.path.join(os.path.dirname(sys.executable), "vtconnect")
    env = dict(env, VTCONNECT_CONFIG=str(cfg))
    proc = subprocess.Popen([exe, "serve", "--webhook"], env=env, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    lines = []
    for _ in range(100):
        lines.append(proc.stderr.readline())
        if "listening on" in lines[-1]:
            return proc, lines[-1].strip().rsplit(" ", 1)[-1]
        if not lines[-1]:
            break
    proc.kill()
    raise AssertionError(f"the replica did not start: {''.join(lines)}")


async def test_a_killed_replicas_alerts_are_finished_by_the_other(tmp_path, emulator_url,
                                                                   pg_database):  # fmt: skip
    got: collections.Counter = collections.Counter()
    unsigned: List[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            auth.verify("standard", WHSEC, request.headers, body)
        except auth.AuthError as exc:
            unsigned.append(str(exc))
            return web.Response(status=401)
        got[request.headers["webhook-id"]] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    procs: List[subprocess.Popen] = []
    urls: List[str] = []
    accepted: Dict[int, str] = {}
    alive = [True, True]
    try:
        _start_both(tmp_path, hook_url, emulator_url, pg_database, procs, urls)
        await _send_and_kill(urls, procs, accepted, alive)
        for _ in range(1200):
            if len(got) >= N:
                break
            await asyncio.sleep(0.05)
    finally:
        for proc in procs:  # also when the second one did not start
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        await runner.cleanup()
    _check(procs, got, unsigned, accepted, pg_database, tmp_path)


def _start_both(tmp_path, hook_url, emulator_url, pg_database, procs, urls) -> None:
    for name in ("a", "b"):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'[core]\nstate_dir = "{tmp_path / name}"\n[quota]\ntier = "unlimited"\n'
            f"[webhook]\nport = 0\nlease_seconds = {LEASE}\n[[webhook.sources]]\n"
            f'name = "s"\nformat = "splunk"\nauth = "bearer"\nsecret = "{TOKEN}"\n'
            f'callback_url = "{hook_url}"\ncallback_secret = "{WHSEC}"\n'
            "allow_http = true\nallow_private = true\nretry_base = 0.05\n"
            "rate_per_minute = 100000\n"
        )
        env = dict(os.environ, VT_API_URL=emulator_url, VT_API_KEY="k",
                   VTCONNECT_DATABASE=pg_database)  # fmt: skip
        proc, url = start_replica(cfg, env)
        procs.append(proc)
        urls.append(url)


async def _send_and_kill(urls, procs, accepted, alive) -> None:
    """Alternately to both, as a round-robin balancer; replica a is killed a third of the way
    and then dropped by the balancer."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        sem = asyncio.Semaphore(16)

        async def send(i: int) -> None:
            alert = {"sid": f"replica-{i}", "search_name": "replicas",
                     "result": {"dest": f"host{i % 40}.example.com"}}  # fmt: skip
            target = i % 2
            while True:
                if not alive[target]:
                    target = 1 - target
                try:
                    async with sem, http.post(
                        f"{urls[target]}/v1/alerts/splunk", json=alert
                    ) as r:
                        if r.status in (200, 202):
                            accepted[i] = (await r.json())["job"]
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

        async def killer() -> None:
            while len(accepted) < N // 3:
                await asyncio.sleep(0.01)
            alive[0] = False
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)

        await asyncio.gather(killer(), *(send(i) for i in range(N)))


def _check(procs, got, unsigned, accepted, pg_database, tmp_path) -> None:
    assert procs[0].returncode == -signal.SIGKILL and unsigned == []
    assert len(set(accepted.values())) == N  # one job per alert, also across replicas
    assert set(got) == set(accepted.values())  # every accepted alert was called back
    repeats = sum(v - 1 for v in got.values())
    assert repeats <= 1, repeats
    conn = database.connect(pg_database)
    try:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM webhook_jobs GROUP BY 1"))
        delivery = dict(conn.execute("SELECT delivery, COUNT(*) FROM webhook_jobs GROUP BY 1"))
    finally:
        conn.close()
    assert states == {"done": N} and delivery == {"delivered": N}
    # the survivor wrote no SQLite outbox: the jobs live in the shared database only
    assert not (tmp_path / "b" / "webhook.db").exists()
