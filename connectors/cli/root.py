"""`vtconnect` command line: the group and its global options; each command group is a module
beside this one. Sub-commands stay thin: they parse options and call the packages.

Exit codes: 0 done; 1 some lookups failed (verdict error) or VirusTotal could not be reached;
2 usage, configuration or input error; 3 VirusTotal rejected the API key.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional

import click

from ..core import config as config_mod
from .context import ConfigProblem, Ctx


class Root(click.Group):
    """`--config PATH` and `-v` may come after the sub-command too (`vtconnect lookup X --config
    c.toml`): they are moved in front of it before click parses, up to a `--`."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        front: List[str] = []
        rest: List[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                rest += args[i:]
                break
            if a == "--config":
                if i + 1 == len(args):
                    raise click.BadOptionUsage(
                        "config", "Option '--config' requires an argument.", ctx
                    )
                front += args[i : i + 2]
                i += 2
                continue
            if a.startswith("--config=") or a == "--verbose" or (
                a.startswith("-v") and set(a[1:]) == {"v"}
            ):
                front.append(a)
            else:
                rest.append(a)
            i += 1
        return super().parse_args(ctx, front + rest)

    def invoke(self, ctx: click.Context) -> Any:
        # A store a command opens late (the shared database unreachable, a schema newer than
        # this vtconnect) is a configuration error like any other: one line, exit 2.
        try:
            return super().invoke(ctx)
        except config_mod.ConfigError as exc:
            raise ConfigProblem(str(exc)) from None


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="VTCONNECT_CONFIG",
    type=click.Path(),
    help="vtconnect.toml to read (default: $VTCONNECT_CONFIG, else ./vtconnect.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.version_option(package_name="vtconnect")
@click.pass_context
def main(ctx: click.Context, config_path: Optional[str], verbose: int) -> None:
    """VirusTotal enrichment for the tools security teams already run."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Ctx(config_path, verbose)


def _register() -> None:
    from .api import api
    from .cache import cache
    from .config import config_group, init
    from .db import db
    from .demo import demo
    from .emulator import emulator
    from .lists import lists
    from .lookup import lookup
    from .quota import quota
    from .scan import scan
    from .serve import serve
    from .splunk import splunk
    from .taxii import taxii
    from .webhook import webhook

    for command in (api, cache, config_group, db, demo, emulator, init, lists, lookup, quota,
                    scan, serve, splunk, taxii, webhook):  # fmt: skip
        main.add_command(command)


_register()
