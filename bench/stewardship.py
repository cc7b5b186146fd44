"""Stewardship benchmark: how many VirusTotal calls each scenario makes against the minimum it
needs, and whether anything private leaves the host. Figures, not a timed test.

The emulator runs in its own process behind a loopback recording proxy (bench/_support): every
request the connectors send is logged there. The connectors are real processes: `vtconnect
lookup` (CLI), `vtconnect serve --webhook --taxii` (the server) and `vtconnect taxii pull
--enrich`, sharing one state directory per scenario as processes on one host do.

Per scenario: `made` (API requests the proxy saw), `minimum` (what the scenario needs), `avoidable`
(made minus the requests that were needed), `wasted` (429/400 answers: no verdict). The last line
is one JSON object with the totals and the per-scenario figures. `--quick` shortens the public
tier scenario from two minutes to 20 s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # last: bench/taxii.py is not `taxii`

from _emulator_proc import emulator_process, free_port  # noqa: E402
from _support.recording_proxy import RecordingProxy, Seen  # noqa: E402

from connectors.emulator.synth import Synth  # noqa: E402
from taxii.config import hash_password  # noqa: E402

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
PUBLIC_SECONDS = 20.0 if QUICK else 120.0
CLI = [sys.executable, "-m", "connectors.cli"]
KEY = "bench-unlimited-key"
PUBLIC_KEY = "bench-public-key"
EICAR = {
    "md5": "44d88612fea8a8f36de82e1278abb02f",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
}
INBOX = "2a1b0c9d-8e7f-4a5b-9c8d-7e6f5a4b3c2d"
FEED = "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5"
TAXII_PASSWORD = "bench horse battery staple"


def url_id(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def get(kind: str, ident: str) -> str:
    return f"GET /api/v3/{kind}/{ident}"


class Host:
    """One scenario's host: a state directory and a config file every process shares."""

    def __init__(self, root: str, name: str, proxy: str, extra: str = "", key: str = KEY):
        self.dir = Path(root) / name
        self.dir.mkdir()
        self.config = self.dir / "vtconnect.toml"
        self.webhook_port, self.taxii_port = free_port(), free_port()
        self.config.write_text(
            f'[core]\nstate_dir = "{self.dir / "state"}"\n'
            "[privacy]\nallow_documentation_ranges = true\n"
            f"{extra}\n"
            f"[webhook]\nport = {self.webhook_port}\n"
            '[[webhook.sources]]\nname = "bench"\nformat = "generic"\nauth = "none"\n'
            f'[taxii]\nport = {self.taxii_port}\nstore = "{self.dir / "taxii.db"}"\n'
            f'[[taxii.collections]]\nid = "{FEED}"\ntitle = "Feed"\n'
            'read = ["analyst"]\nwrite = ["analyst"]\n'
            f'[[taxii.collections]]\nid = "{INBOX}"\ntitle = "Inbox"\n'
            'read = ["analyst"]\nwrite = ["analyst"]\n'
            f'[[taxii.users]]\nname = "analyst"\n'
            f'password_hash = "{hash_password(TAXII_PASSWORD, 1000)}"\n'
        )
        self.env = dict(
            os.environ, VT_API_URL=proxy, VT_API_KEY=key, VTCONNECT_CONFIG=str(self.config)
        )
        self.server: Optional[subprocess.Popen] = None

    def cli(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*CLI, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def lookup(self, *values: str, extra: Sequence[str] = ()) -> subprocess.Popen:
        return self.cli("lookup", "--format", "json", *extra, *values)

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [*CLI, "serve", "--webhook", "--taxii"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in (self.webhook_url + "/healthz", self.taxii_url + "/taxii2/"):
            for _ in range(400):
                try:
                    urllib.request.urlopen(url, timeout=1).read()
                    break
                except urllib.error.HTTPError:
                    break  # answering (401 without credentials)
                except OSError:
                    if self.server.poll() is not None:
                        raise RuntimeError(self.server.stderr.read()) from None  # type: ignore
                    time.sleep(0.05)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def taxii_url(self) -> str:
        return f"http://127.0.0.1:{self.taxii_port}"

    def alert(self, doc: Dict[str, Any], wait: float = 20) -> Dict[str, Any]:
        req = urllib.request.Request(
            f"{self.webhook_url}/v1/alerts/generic?wait={wait:g}",
            data=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=wait + 10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None


def finish(procs: Iterable[subprocess.Popen], timeout: float = 300) -> List[Any]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        try:
            out.append(json.loads(stdout) if stdout.strip() else None)
        except ValueError:
            out.append(None)
        if p.returncode not in (0, 1):
            print(f"  exit {p.returncode}: {stderr.strip()[-300:]}", file=sys.stderr)
    return out


def control(emulator: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
    req = urllib.request.Request(
        emulator + path,
        data=json.dumps(body).encode() if body is not None else b"",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def key_of(seen: Seen) -> str:
    return f"{seen.method} {seen.path_qs.split('?', 1)[0]}"


def figures(seen: List[Seen], needed: Set[str], **more: Any) -> Dict[str, Any]:
    """made, minimum (len(needed)), avoidable (made minus the needed requests made once)."""
    keys = [key_of(s) for s in seen]
    useful = len(needed & set(keys))
    return {
        "made": len(seen),
        "minimum": len(needed),
        "avoidable": len(seen) - useful,
        "missed": len(needed) - useful,
        "wasted": sum(s.status in (400, 429) for s in seen),
        **more,
    }


# -- scenarios ---------------------------------------------------------------------------------
def aliases_across_processes(h: Host, emulator: str) -> Dict[str, Any]:
    for value in (EICAR["md5"], EICAR["sha1"], EICAR["sha256"], EICAR["md5"].upper()):
        finish([h.lookup(value)])
    return {"needed": {get("files", EICAR["md5"])}}


def url_spellings(h: Host, emulator: str) -> Dict[str, Any]:
    groups = {
        "http://example.com/": [
            "http://example.com",
            "http://example.com/",
            "HTTP://EXAMPLE.COM/",
            "http://example.com:80/",
            "http://Example.com/#section",
        ],
        "http://example.com/~user/": ["http://example.com/~user/", "http://example.com/%7Euser/"],
        "http://example.com/a%2Fb": ["http://example.com/a%2fb", "http://example.com/a%2Fb"],
    }
    finish([h.lookup(*[v for vs in groups.values() for v in vs], extra=["--type", "url"])])
    return {"needed": {get("urls", url_id(u)) for u in groups}}


def domain_spellings(h: Host, emulator: str) -> Dict[str, Any]:
    values = ["example.com", "EXAMPLE.com", "example.com.", "straße.de", "xn--strae-oqa.de"]
    finish([h.lookup(*values, extra=["--type", "domain"])])
    return {"needed": {get("domains", "example.com"), get("domains", "xn--strae-oqa.de")}}


def concurrent_askers(h: Host, emulator: str) -> Dict[str, Any]:
    value = hashlib.sha256(b"stewardship concurrent").hexdigest()
    h.start_server()
    control(emulator, "/_emulator/faults", {"latency_ms": 2000})
    try:
        procs = [h.lookup(value) for _ in range(5)]
        h.alert({"title": "alert", "sha256": value})
        finish(procs)
    finally:
        control(emulator, "/_emulator/faults", {})
        h.stop()
    return {"needed": {get("files", value)}, "askers": 6}


def cross_connector(h: Host, emulator: str) -> Dict[str, Any]:
    value = "cross-connector.example.net"
    h.start_server()
    try:
        finish([h.lookup(value)])
        h.alert({"title": "alert", "domain": value})
        indicator = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "pattern": f"[domain-name:value = '{value}']",
            "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z",
        }
        auth = base64.b64encode(f"analyst:{TAXII_PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"{h.taxii_url}/api/collections/{FEED}/objects/",
            data=json.dumps({"objects": [indicator]}).encode(),
            headers={
                "Content-Type": "application/taxii+json;version=2.1",
                "Accept": "application/taxii+json;version=2.1",
                "Authorization": "Basic " + auth,
            },
            method="POST",
        )
        urllib.request.urlopen(req, timeout=20).read()
        p = h.cli(
            "taxii", "pull", f"{h.taxii_url}/api/", "--collection", "Feed", "--user", "analyst",
            "--password", TAXII_PASSWORD, "--enrich", "--into", "Inbox",
        )  # fmt: skip
        stdout, stderr = p.communicate(timeout=120)
        pulled = (stdout + stderr).strip().splitlines()[-1:] or [""]
    finally:
        h.stop()
    return {"needed": {get("domains", value)}, "pull": pulled[0][-80:]}


def not_found_twice(h: Host, emulator: str) -> Dict[str, Any]:
    synth = Synth()
    value = next(
        v
        for v in (hashlib.sha256(f"nf{i}".encode()).hexdigest() for i in range(1000))
        if synth.is_missing("file", v)
    )
    finish([h.lookup(value)])
    finish([h.lookup(value)])
    return {"needed": {get("files", value)}}


def errors_and_retries(h: Host, emulator: str) -> Dict[str, Any]:
    # Every answer a 503 TransientError: each asker retries within its bound ([virustotal]
    # retries = 2), errors are not cached, so two processes need 2 x 3 requests at most.
    value = hashlib.sha256(b"stewardship errors").hexdigest()
    control(emulator, "/_emulator/faults", {"error_rates": {"TransientError": 1.0}})
    try:
        finish([h.lookup(value)])
        finish([h.lookup(value)])
    finally:
        control(emulator, "/_emulator/faults", {})
    return {"minimum": 6}


def public_tier(h: Host, emulator: str) -> Dict[str, Any]:
    """Processes start every PUBLIC_SECONDS/12 s, each asking two new values with a short
    deadline: the ledger must keep the emulator's public tier (4/min) from ever answering 429."""
    step = PUBLIC_SECONDS / 12
    procs, t0 = [], time.monotonic()
    for i in range(12):
        while time.monotonic() < t0 + i * step:
            time.sleep(0.05)
        values = [hashlib.sha256(f"public{i}-{j}".encode()).hexdigest() for j in range(2)]
        procs.append(h.lookup(*values, extra=["--deadline", f"{step:g}"]))
    finish(procs)
    return {"useful_is_answered": True, "seconds": PUBLIC_SECONDS}


def relationships_per_kind(h: Host, emulator: str) -> Dict[str, Any]:
    values = [EICAR["md5"], "http://example.org/rel", "rel.example.com", "203.0.113.77"]
    for _ in range(2):
        finish([h.lookup(*values)])
    return {
        "needed": {
            get("files", EICAR["md5"]),
            get("urls", url_id("http://example.org/rel")),
            get("domains", "rel.example.com"),
            get("ip_addresses", "203.0.113.77"),
        }
    }


def rescan_across_processes(h: Host, emulator: str) -> Dict[str, Any]:
    """Two processes, one after the other: one GET per value, one reanalysis per report older
    than 30 days (as the first process's answers date them), none by the second process."""
    values = [hashlib.md5(f"rescan{i}".encode()).hexdigest() for i in range(20)]
    runs = [finish([h.lookup(*values, extra=["--rescan-after-days", "30"])])[0] or []]
    runs += [finish([h.lookup(*values, extra=["--rescan-after-days", "30"])])[0] or []]
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
    old = sum(1 for row in runs[0] if row.get("last_analysis") and row["last_analysis"] < cutoff)
    stale = [sum(1 for row in rows if row.get("stale")) for rows in runs]
    return {"minimum": len(values) + old, "older_than_30_days": old, "marked_stale": stale}


PRIVATE = [
    # IPv4 private, loopback, link-local, CGNAT, this-network, broadcast, multicast, reserved
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "169.254.10.10", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.251", "240.0.0.1",
    # IPv6: loopback, link-local, ULA, multicast, IPv4-mapped and -compatible, 6to4, NAT64, Teredo
    "::1", "fe80::1", "fd12:3456:789a::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1",
    "::ffff:192.168.1.1", "::10.0.0.1", "::192.168.1.1", "2002:c0a8:0101::1", "2002:0a00:0001::1",
    "64:ff9b::10.0.0.1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # internal names and single labels
    "printer.local", "db1.corp", "intranet", "files.internal", "nas.home.arpa", "localhost",
    "build.lan",
    # URLs on private hosts or with credentials
    "http://10.0.0.1/admin", "http://[::10.0.0.1]/", "http://[::ffff:192.168.0.1]/x",
    "http://intranet.corp/wiki", "http://localhost:8080/", "http://admin:S3cret@example.org/login",
    # e-mail addresses and file names that look like domains
    "alice@corp.example.com", "invoice.zip", "README.md", "setup.py", "run.sh",
    "backup.zip/data.sql",
]  # fmt: skip
CREDENTIAL = "S3cret"
STRIPPED = url_id("http://example.org/login")  # the credential URL without its userinfo


def privacy(h: Host, emulator: str) -> Dict[str, Any]:
    h.start_server()
    try:
        finish([h.lookup(*PRIVATE)])
        h.alert(
            {
                "title": "phishing report",
                "message": "mail from alice@corp.example.com with invoice.zip, README.md and "
                "run.sh attached; the host 10.0.0.1 and ::10.0.0.1 were contacted",
            }
        )
    finally:
        h.stop()
    return {"privacy": True}


def leaks(seen: List[Seen]) -> List[str]:
    """Every request of the privacy scenario is a leak, except the credential URL looked up
    without its userinfo; a request that carries the credential is one anywhere."""
    out = []
    for s in seen:
        ident = s.path_qs.split("?", 1)[0].rsplit("/", 1)[-1]
        if CREDENTIAL.encode() in s.body or CREDENTIAL in _decoded(ident):
            out.append(f"{s.method} {s.path_qs[:80]} (credential)")
        elif not (s.path_qs.startswith("/api/v3/urls/") and ident == STRIPPED):
            out.append(f"{s.method} {s.path_qs[:80]}")
    return out


def _decoded(ident: str) -> str:
    try:
        return base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4)).decode("utf-8", "replace")
    except (ValueError, TypeError):
        return ident


SCENARIOS: List[Callable[[Host, str], Dict[str, Any]]] = [
    aliases_across_processes,
    url_spellings,
    domain_spellings,
    concurrent_askers,
    cross_connector,
    not_found_twice,
    errors_and_retries,
    relationships_per_kind,
    rescan_across_processes,
    public_tier,
    privacy,
]
EXTRA = {
    relationships_per_kind: 'relationships = ["contacted_domains", "contacted_ips"]',
    errors_and_retries: "retries = 2",
}


def main() -> None:
    results: Dict[str, Dict[str, Any]] = {}
    privacy_leaks: List[str] = []
    with (
        tempfile.TemporaryDirectory() as root,
        emulator_process(
            ["--key", f"{KEY}:unlimited", "--key", f"{PUBLIC_KEY}:public"]
        ) as emulator,
    ):
        proxy = RecordingProxy(emulator)
        proxy_url = proxy.start()
        try:
            for scenario in SCENARIOS:
                name = scenario.__name__
                vt_extra = EXTRA.get(scenario, "")
                tier = "public" if scenario is public_tier else "unlimited"
                extra = f"[quota]\ntier = '{tier}'\n" + (
                    f"[virustotal]\n{vt_extra}\n" if vt_extra else ""
                )
                host = Host(root, name, proxy_url, extra, PUBLIC_KEY if tier == "public" else KEY)
                mark = proxy.mark()
                t0 = time.monotonic()
                info = scenario(host, emulator)
                host.stop()
                seen = proxy.since(mark)
                if "needed" in info:
                    fig = figures(seen, info.pop("needed"), **info)
                elif "minimum" in info:
                    n = info.pop("minimum")
                    fig = {"made": len(seen), "minimum": n, "avoidable": max(0, len(seen) - n)}
                    fig["wasted"] = sum(s.status in (400, 429) for s in seen)
                    fig["reanalyses"] = sum(s.method == "POST" for s in seen)
                    fig.update(info)
                elif info.pop("useful_is_answered", False):
                    answered = {key_of(s) for s in seen if s.status in (200, 404)}
                    fig = figures(seen, answered, **info)
                    fig["answered_429"] = sum(s.status == 429 for s in seen)
                else:  # privacy: only the credential URL without its userinfo may leave
                    info.pop("privacy")
                    found = leaks(seen)
                    privacy_leaks += found
                    allowed = {key_of(s) for s in seen if s.path_qs.endswith("/" + STRIPPED)}
                    fig = figures(seen, allowed, leaks=len(found), **info)
                fig["seconds"] = round(time.monotonic() - t0, 1)
                results[name] = fig
                print(f"{name}: {json.dumps(fig)}", flush=True)
        finally:
            proxy.stop()
    for leak in privacy_leaks:
        print(f"  leak: {leak}")
    summary = {
        "bench": "stewardship",
        "quick": QUICK,
        "calls_made": sum(f["made"] for f in results.values()),
        "calls_minimum": sum(f["minimum"] for f in results.values()),
        "avoidable": sum(f["avoidable"] for f in results.values() if "leaks" not in f),
        "privacy_leaks": len(privacy_leaks),
        "wasted_calls_no_verdict": sum(f["wasted"] for f in results.values()),
        "targets": {"avoidable": 0, "privacy_leaks": 0, "wasted_calls_no_verdict": 0},
        "scenarios": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
