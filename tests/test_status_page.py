"""The status page in a real headless browser (Debian's chromium driven by Playwright): served by
a real `vtconnect serve` process, authenticated, filled from /status.json with quota, cache, the
newest risky verdicts, webhook jobs and TAXII collections. A hostile value in the verdict log is
shown as text and runs nothing. The screenshot is kept in build/test-artifacts/."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from connectors.core.config import CacheSettings
from connectors.core.store import Cache, LogRecord
from taxii.config import hash_password

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("vtconnect"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
COLLECTION = "5e1f3a2b-9c4d-4e8f-a1b2-c3d4e5f60718"
HOSTILE = "http://evil.example/<img src=x onerror=\"window.__xss=1\">"
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"


@pytest.fixture
def served(tmp_path, emulator_url):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(
        f'[core]\nstate_dir = "{tmp_path}"\n[quota]\ntier = "public"\n'
        f'[taxii]\nport = 0\n[[taxii.collections]]\nid = "{COLLECTION}"\n'
        'title = "VirusTotal malicious"\nread = ["*"]\npublish = ["malicious"]\n'
        "[webhook]\nport = 0\n"
        f'[[status.users]]\nname = "ops"\npassword_hash = "{hash_password("ops-pw", 1000)}"\n'
    )
    env = dict(os.environ, VTCONNECT_CONFIG=str(cfg), VT_API_URL=emulator_url, VT_API_KEY="k")
    r = subprocess.run([EXE, "lookup", EICAR_MD5], env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cache = Cache(tmp_path / "cache.db", CacheSettings())
    cache.log([LogRecord("url:x", "url", HOSTILE, "malicious", 90, "webhook", time.time(), "x")])
    cache.close()
    proc = subprocess.Popen([EXE, "serve", "--taxii", "--webhook"], env=env,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    urls = {}
    while len(urls) < 2:
        line = proc.stderr.readline()
        assert line, "serve exited"
        if "listening on" in line:
            urls[line.split()[0]] = line.strip().rsplit(" ", 1)[-1]
    yield urls
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def _get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_status_needs_credentials_on_every_part(served):
    for url in served.values():
        for path in ("/status", "/status.json", "/status/status.js"):
            status, headers, _ = _get(url + path)
            assert status == 401 and "Basic" in headers["WWW-Authenticate"], (url, path)
        assert _get(url + "/status.json", "ops:wrong")[0] == 401
        status, headers, body = _get(url + "/status.json", "ops:ops-pw")
        assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
        doc = json.loads(body)
        assert doc["quota"]["per_day"] == 500 and doc["quota"]["used_today"] == 1
        assert [c["title"] for c in doc["taxii"]] == ["VirusTotal malicious"]


def test_status_page_in_a_real_browser(served):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    playwright = pytest.importorskip("playwright.sync_api")
    artifacts = ROOT / "build" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip  (this machine has no network beyond loopback)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            context = browser.new_context(
                http_credentials={"username": "ops", "password": "ops-pw"},
                viewport={"width": 1200, "height": 1000},
            )
            page = context.new_page()
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served["webhook"] + "/status")
            page.wait_for_selector("body[data-loaded='1']", timeout=15000)
            assert page.title() == "vtconnect status"
            assert page.text_content("#used-today") == "1 / 500"
            assert page.text_content("#tier").startswith("tier public")
            values = page.locator("#risky-rows td.value").all_text_contents()
            assert values[0] == HOSTILE  # newest first, shown exactly as text
            assert EICAR_MD5 in values
            assert page.evaluate("window.__xss") is None and not dialogs
            assert page.locator("#risky-rows img").count() == 0
            first_cell = page.locator("#collection-rows td").first.text_content()
            assert first_cell == "VirusTotal malicious"
            assert page.locator("#chart polyline").count() == 1
            assert not errors, errors
            page.screenshot(path=str(artifacts / "status-page.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts / "status-page.png").stat().st_size > 10_000
