"""The `vtconnect` command line (click), one module per command group; root.py holds the group
and the commands that ask VirusTotal. This package is an entry point: nothing else in the product
imports it."""

from .root import main

__all__ = ["main"]
