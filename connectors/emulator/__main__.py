"""python -m connectors.emulator [PORT]: the emulator on 127.0.0.1 with default settings."""

import sys

from .server import serve

serve("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8642)
