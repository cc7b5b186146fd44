"""`python -m connectors.cli ...`, the same as `vtconnect ...`."""

from .root import main

main()
