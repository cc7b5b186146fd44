"""Modular input vtconnect_feed://<name>: VirusTotal's IoC Stream or Livehunt notifications
(premium) indexed as events (sourcetypes vtconnect:ioc_stream, vtconnect:livehunt), checkpointed
in the KV store, through the host's quota governor at background priority.
vtlookup_support/feeds.py has the logic; README/inputs.conf.spec the parameters.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vtlookup_support import oldpython  # noqa: E402  before anything that needs Python 3.9

if oldpython.too_old():
    sys.stderr.write(oldpython.message() + "\n")
    sys.exit(1)

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.basename(APP_DIR)
sys.path.insert(0, os.path.join(APP_DIR, "lib"))

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from typing import Any, Dict  # noqa: E402
from urllib.parse import quote  # noqa: E402

from splunklib.modularinput import Argument, Event, Scheme, Script  # noqa: E402
from vtlookup_support import feeds, secrets, settings  # noqa: E402

from connectors.core.config import ConfigError  # noqa: E402

log = logging.getLogger("vtconnect.feeds")


class FeedsInput(Script):
    def get_scheme(self) -> Scheme:
        scheme = Scheme("VirusTotal feed")
        scheme.description = "VirusTotal IoC Stream or Livehunt notifications as events."
        scheme.use_external_validation = True
        scheme.use_single_instance = False
        for name, desc, required in (
            ("feed", "ioc_stream or livehunt", True),
            ("filter", "IoC Stream filter, e.g. entity_type:file (optional)", False),
            ("max_pages", "API calls per run at most (40 notifications each), 1-100", False),
        ):
            scheme.add_argument(
                Argument(
                    name,
                    description=desc,
                    data_type=Argument.data_type_string,
                    required_on_create=required,
                )  # fmt: skip
            )
        return scheme

    def validate_input(self, definition: Any) -> None:
        problem = _problem(definition.parameters)
        if problem:
            raise ValueError(problem)

    def stream_events(self, inputs: Any, ew: Any) -> None:
        service = self.service
        conf = settings.read_conf_rest(service, APP)
        core, _ = settings.build(
            conf,
            secrets.read(service, APP),
            settings.state_dir(conf.get("command", {}).get("state_dir", ""), os.environ, ""),
            env=os.environ,
        )
        if not core.virustotal.api_key:
            raise ConfigError("no VirusTotal API key: set it on the app's configuration page")
        for name, params in inputs.inputs.items():
            problem = _problem(params)
            if problem:
                ew.log("ERROR", f"{name}: {problem}")
                continue
            asyncio.run(_run(core, service, name, params, ew))


def _problem(params: Dict[str, Any]) -> str:
    feed = str(params.get("feed") or "")
    if feed not in feeds.FEEDS:
        return f"feed must be one of {', '.join(feeds.FEEDS)}, not {feed!r}"
    pages = str(params.get("max_pages") or "10")
    if not pages.isdigit() or not 1 <= int(pages) <= 100:
        return f"max_pages must be 1 to 100, not {pages!r}"
    return ""


async def _run(core: Any, service: Any, name: str, params: Dict[str, Any], ew: Any) -> None:
    from connectors.core.enricher import Enricher

    enricher = Enricher(core, connector="splunk-feeds")
    feed = str(params["feed"])
    key = quote(name.replace("://", "_"), safe="")
    cp = feeds.load_checkpoint(service, APP, key)
    try:
        items, why = await feeds.poll(
            enricher.gateway, enricher.governor, feed, cp,
            int(params.get("max_pages") or 10), str(params.get("filter") or ""),
        )  # fmt: skip
    finally:
        await enricher.aclose()
        enricher.close()
    sourcetype = feeds.FEEDS[feed][1]
    for item in reversed(items):  # oldest first
        when = feeds.event_time(item)
        ew.write_event(
            Event(
                data=json.dumps(feeds.event(feed, item, core.policy), separators=(",", ":")),
                stanza=name,
                time=f"{when:.3f}" if when else None,
                sourcetype=sourcetype,
            )  # fmt: skip
        )
        cp.advance(when, str((item.get("context_attributes") or {}).get("notification_id", "")))
    feeds.save_checkpoint(service, APP, key, cp)
    level = "INFO" if why == "done" else "WARN"
    ew.log(level, f"{name}: {len(items)} new notification(s); stopped: {why}")


if __name__ == "__main__":
    sys.exit(FeedsInput().run(sys.argv))
