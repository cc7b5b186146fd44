"""`vtconnect cache stats|purge`: the verdict cache."""

from __future__ import annotations

import json

import click

from ..core import config as config_mod
from ..core.database import redacted
from ..core.store import CacheStore, cache_for
from .context import ConfigProblem, Ctx


@click.group()
def cache() -> None:
    """Inspect or empty the verdict cache."""


def _open_cache(obj: Ctx) -> CacheStore:
    """[core] database when set, else the SQLite file; an unusable database is one line."""
    try:
        return cache_for(obj.settings)
    except config_mod.ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_obj
def cache_stats(obj: Ctx, as_json: bool) -> None:
    """Entries by verdict, hit rate, verdict log size."""
    c = _open_cache(obj)
    try:
        stats = c.stats()
    finally:
        c.close()
    stats.pop("memory_entries", None)  # this process's own memory: always empty here
    where = redacted(obj.settings.database) if obj.settings.database else obj.settings.cache_path
    if as_json:
        click.echo(json.dumps(dict(stats, path=str(where))))
        return
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(stats["by_verdict"].items())) or "none"
    looked = stats["hits_total"] + stats["misses_total"]
    click.echo(f"cache        {where} ({stats['db_bytes'] / 1024:.0f} KiB)")
    click.echo(f"entries      {stats['entries']} live ({verdicts}); {stats['expired']} expired; "
               f"{stats['aliases']} hash aliases")  # fmt: skip
    click.echo(f"hit rate     {100 * stats['hit_rate']:.1f}% of {looked} lookups; today "
               f"{stats['hits_today']} hits, {stats['misses_today']} misses")  # fmt: skip
    click.echo(f"verdict log  {stats['log_rows']} rows (kept 30 days)")


@cache.command("purge")
@click.option(
    "--all", "everything", is_flag=True, help="Remove every entry, not only expired ones."
)
@click.pass_obj
def cache_purge(obj: Ctx, everything: bool) -> None:
    c = _open_cache(obj)
    try:
        n = c.purge(expired_only=not everything)
    finally:
        c.close()
    click.echo(f"removed {n} entries")
