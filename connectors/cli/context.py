"""What every command shares: the context object (the settings, loaded once, a configuration
error as one line), the exit codes, and the exit for a rejected API key."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..core import config as config_mod
from ..core.gateway import CredentialsRejected

EXIT_FAILED, EXIT_USAGE, EXIT_CREDENTIALS, EXIT_INTERRUPTED = 1, 2, 3, 130
MAX_LINE = 8192  # longer input lines come back skipped, shortened in the output


class ConfigProblem(click.ClickException):
    """A configuration error: one line (`Error: <key> ...`) and exit 2, no usage text (the
    command line was fine; the file or the environment is not)."""

    exit_code = EXIT_USAGE


class Ctx:
    def __init__(self, config_path: Optional[str], verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._settings: Optional[config_mod.Settings] = None

    @property
    def settings(self) -> config_mod.Settings:
        if self._settings is None:
            try:
                self._settings = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise ConfigProblem(str(exc)) from None
        return self._settings


def credentials_exit(exc: CredentialsRejected) -> None:
    if exc.code == "NoApiKey":  # nothing was sent: a configuration error
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"error: VirusTotal rejected the API key ({exc.code}): {exc.message}", err=True)
    sys.exit(EXIT_CREDENTIALS)
