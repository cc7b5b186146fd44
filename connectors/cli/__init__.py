"""The `vtconnect` command line (click), one module per command group (lookup.py, scan.py,
taxii.py, webhook.py, ...), the group itself in root.py, what they share in context.py and the
output renderers in render.py. This package is an entry point: nothing else in the product
imports it."""

from .root import main

__all__ = ["main"]
