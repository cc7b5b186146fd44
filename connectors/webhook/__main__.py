"""`python -m connectors.webhook [--config PATH]`: the receiver alone, through the same serve
loop as `vtconnect serve --webhook` (SIGTERM/SIGINT: workers finish or re-queue). Prints
"webhook listening on URL" on stderr once it listens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Dict, List, Optional

from connectors.core.config import ConfigError, load
from connectors.serve import plan, serve

from .config import load as load_webhook


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.webhook")
    parser.add_argument("--config", help="vtconnect.toml (default: $VTCONNECT_CONFIG, ./)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load(args.config)
        parts = plan(settings, ["webhook"])
        load_webhook(settings.raw)  # a config error is a message here, not a traceback later
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def ready(urls: Dict[str, str]) -> None:
        print(f"webhook listening on {urls['webhook']}", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve(settings, parts, ready))
    except ConfigError as exc:  # the outbox cannot be opened, the port is in use
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
