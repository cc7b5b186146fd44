"""`vtconnect splunk ...`: build the Splunk app. The build code lives in packaging/ (loaded by
path: a package named `packaging` would shadow pip's library of that name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

import click

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def load_packaging(name: str) -> ModuleType:
    """packaging/<name>.py as a module (cached in sys.modules under a private name)."""
    key = f"_vtconnect_packaging_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = PACKAGING / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None or not path.exists():
        raise click.ClickException(
            f"{path} not found: the packaging code ships with the source tree"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@click.group()
def splunk() -> None:
    """The Splunk app (| vtlookup)."""


@splunk.command("build")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the tarball (default: dist/).",
)
def build(out_dir: Optional[str]) -> None:
    """Build dist/<app_id>-<version>.tar.gz (vendored, pure-Python lib/) and print its path."""
    mod = load_packaging("splunk_build")
    try:
        path = mod.build(Path(out_dir) if out_dir else None, log=lambda m: click.echo(m, err=True))
    except mod.BuildError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
