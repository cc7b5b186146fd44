"""`vtconnect demo` part for Splunk: build the app, then run `| vtlookup field=dest` from the
built app through the protocol harness (playing splunkd) against a local VirusTotal emulator,
and print the enriched records. No Splunk, no API key, no network beyond loopback.

Loaded by path (connectors/cli/splunk.load_packaging):
`load_packaging("splunk_demo").run(console)`.
"""

from __future__ import annotations

import configparser
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EVENTS = [
    {"_time": "1714550400", "user": "alice", "dest": "44d88612fea8a8f36de82e1278abb02f"},
    {"_time": "1714550401", "user": "bob", "dest": "hxxps://example[.]com/login"},
    {"_time": "1714550402", "user": "carol", "dest": ["example.org", "203.0.113.66"]},
    {"_time": "1714550403", "user": "dave", "dest": "10.1.2.3"},
    {"_time": "1714550404", "user": "erin", "dest": "not an indicator"},
]
SHOWN = ("dest", "vt_kind", "vt_verdict", "vt_score", "vt_malicious", "vt_total", "vt_cached")


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _cell(v: Any) -> str:
    return " | ".join(v) if isinstance(v, list) else str(v)


def run(console: Optional[Any] = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from connectors.emulator.server import EmulatorThread

    console = console or Console()
    build = _load("_vtconnect_splunk_build", ROOT / "packaging" / "splunk_build.py")
    harness = _load("_vtconnect_splunk_harness", ROOT / "tests" / "splunk" / "harness.py")
    with tempfile.TemporaryDirectory(prefix="vtconnect-splunk-demo-") as tmp:
        work = Path(tmp)
        console.print("[bold]Splunk app[/]: building the app (lib/ is vendored once, then cached)")
        tarball = build.build(work / "dist", log=lambda m: console.print(f"  {m}"))
        console.print(f"  built {tarball.name}")
        app_dir = build.extract(tarball, work / "apps")
        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        cp.read(app_dir / "default" / "vtlookup.conf")
        conf: Dict[str, Dict[str, str]] = {s: dict(cp[s]) for s in cp.sections()}
        emu = EmulatorThread()
        url = emu.start()
        try:
            conf["virustotal"]["api_url"] = url
            conf["privacy"]["allow_documentation_ranges"] = "true"
            conf["quota"]["tier"] = "unlimited"
            env = harness.command_env(work / "splunk_home")
            with harness.FakeSplunkd(conf=conf, passwords={"api_key": "demo-" + "0" * 59}) as sd:
                console.print(
                    "  running [cyan]index=proxy | vtlookup field=dest[/] through the splunkd "
                    f"protocol harness (fake splunkd {sd.uri}, emulator {url})"
                )
                info, replies, rc = harness.run_search(
                    app_dir, sd, ["field=dest"], [SAMPLE_EVENTS], env=env
                )
                if rc != 0 or not replies:
                    console.print(f"[red]vtlookup failed[/]: {info.messages}")
                    return 1
                records: List[Dict[str, Any]] = replies[0].records
                table = Table(title="| vtlookup field=dest")
                for name in SHOWN:
                    table.add_column(name)
                for rec in records:
                    table.add_row(*(_cell(rec.get(name, "")) for name in SHOWN))
                console.print(table)
                for level, text in replies[0].messages:
                    console.print(f"  search message {level}: {text}")
                console.print(
                    f"  KV store cache now holds {len(sd.kv.get('vtconnect_cache', {}))} documents"
                )
        finally:
            emu.stop()
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
