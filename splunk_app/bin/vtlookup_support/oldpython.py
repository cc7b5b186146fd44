"""One clear message instead of a traceback when Splunk runs the app with a Python older than
3.9 (Splunk Enterprise 9.0-9.2 run Python 3.7; lib/ and connectors.core need 3.9).

Imported before anything else, so it must itself run on old interpreters: no annotations,
nothing newer than Python 3.6 (f-strings).
"""

import json
import sys

MINIMUM = (3, 9)
MESSAGE = (
    "VirusTotal Connect needs Python {need} or later; this Splunk runs Python {have}. "
    "Supported: Splunk Enterprise 9.3 and later, Splunk Cloud Platform 9.3 and later."
)


def too_old(version=None):
    return tuple(version or sys.version_info)[:2] < MINIMUM


def message(version=None):
    v = tuple(version or sys.version_info)
    return MESSAGE.format(need="{}.{}".format(*MINIMUM), have="{}.{}.{}".format(*v[:3]))


def refuse_search_command(stdin=None, stdout=None):
    """Answer splunkd's getinfo chunk (protocol v2) with the message as the search's error,
    then exit 1."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    text = message()
    sys.stderr.write(text + "\n")
    header = stdin.readline()
    parts = header.decode("ascii", "replace").strip().split(",")
    if len(parts) == 3 and parts[0] == "chunked 1.0":  # protocol v2: read the chunk fully
        stdin.read(int(parts[1]) + int(parts[2]))
        reply = {"finished": True, "inspector": {"messages": [["ERROR", text]]}}
        meta = json.dumps(reply).encode("utf-8")
        stdout.write(f"chunked 1.0,{len(meta)},0\n".encode("ascii") + meta)
        stdout.flush()
    sys.exit(1)
