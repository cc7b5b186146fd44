"""kill -9 in the middle of 1,000 asynchronous alerts: after a restart every accepted alert is
enriched and delivered to the callback, each under one webhook-id. The callback below behaves as
Standard Webhooks asks receivers to (a repeated webhook-id is acknowledged, not processed again),
so each alert is processed there exactly once; the only repeat the sender may make is the one
delivery in flight at the moment of the kill (deliveries go one at a time)."""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import subprocess
import sys

import aiohttp
from aiohttp import web

from connectors.webhook import auth

TOKEN = "crash-token-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"crash-callback-key-0123456789ab").decode()
N = 1000


def start_server(cfg, env):
    # The receiver's own entry point (the same serve loop as `vtconnect serve --webhook`).
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.webhook", "--config", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(100):
        line = proc.stderr.readline()
        if "listening on" in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise AssertionError("the server did not start")


async def test_sigkill_mid_stream_loses_nothing(tmp_path, emulator_url):
    got = collections.Counter()
    unsigned = []
    bodies = {}

    async def hook(request):
        body = await request.read()
        wid = request.headers["webhook-id"]
        try:
            auth.verify("standard", WHSEC, request.headers, body)  # every delivery is signed
        except auth.AuthError as exc:
            unsigned.append(str(exc))
            return web.Response(status=401)
        got[wid] += 1
        bodies.setdefault(wid, body)  # processed once; a repeat is only acknowledged
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path / "state"}"\n[quota]\ntier = "unlimited"\n'
        "[webhook]\nport = 0\n[[webhook.sources]]\n"
        f'name = "s"\nformat = "splunk"\nauth = "bearer"\nsecret = "{TOKEN}"\n'
        f'callback_url = "{hook_url}"\ncallback_secret = "{WHSEC}"\n'
        "allow_http = true\nallow_private = true\n"
        "retry_base = 0.05\nrate_per_minute = 100000\n"
    )
    env = dict(os.environ, VT_API_URL=emulator_url, VT_API_KEY="k")
    proc, url = start_server(cfg, env)
    accepted = {}
    killed = False
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            sem = asyncio.Semaphore(16)

            async def send(i):
                alert = {
                    "sid": f"crash-{i}",
                    "search_name": "crash",
                    "result": {"dest": f"host{i % 40}.example.com"},
                }
                while True:  # as a real sender does: retry until acknowledged
                    try:
                        async with sem, http.post(f"{url}/v1/alerts/splunk", json=alert) as r:
                            if r.status in (200, 202):
                                accepted[i] = (await r.json())["job"]
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)

            async def killer():
                nonlocal proc, url, killed
                while len(accepted) < N // 3:
                    await asyncio.sleep(0.01)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                killed = True
                proc, new_url = start_server(cfg, env)
                url = new_url  # senders pick the new address up on their next try

            await asyncio.gather(killer(), *(send(i) for i in range(N)))
        for _ in range(600):
            if len(got) >= N:
                break
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        await runner.cleanup()
    assert killed and unsigned == []
    assert len(set(accepted.values())) == N  # one job per alert, retried posts included
    assert set(got) == set(accepted.values())  # every accepted alert reached the callback
    assert len(bodies) == N  # processed exactly once each at the receiver
    repeats = sum(v - 1 for v in got.values())
    assert repeats <= 1, repeats  # at most the delivery in flight when the process died
