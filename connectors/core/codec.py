"""JSON in and out on the hot paths: VirusTotal's answers, the stored reports.

orjson when it is installed (the CLI and the servers install it): decoding a VirusTotal file
object was ~60% of a cold lookup's CPU with the standard library, ~2x less with orjson, and
encoding a stored report ~10x less. The Splunk app ships no compiled code, so there the standard
library does the same work. Whatever orjson refuses and the standard library accepts (NaN,
lone surrogates, UTF-16 bytes) goes to the standard library. Two differences remain, neither
in anything VirusTotal sends or we store (reports hold ints and strings, no floats): orjson
reads an integer past 64 bits as a float, and writes a NaN or infinite float as null.
"""

from __future__ import annotations

import json
from typing import Any, Union

try:
    import orjson
except ImportError:  # the Splunk app's lib/
    orjson = None  # type: ignore[assignment]

_std_compact = json.JSONEncoder(separators=(",", ":")).encode


def loads(data: Union[bytes, str]) -> Any:
    """json.loads; raises ValueError (UnicodeDecodeError, RecursionError) as it does."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except ValueError:  # orjson.JSONDecodeError: let the standard library decide
            pass
    return json.loads(data)


def dumps(obj: Any) -> str:
    """Compact JSON text (no spaces). Non-ASCII characters may be escaped or not: both read
    back the same."""
    if orjson is not None:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # orjson.JSONEncodeError: big integers, surrogates, odd keys
            pass
    return _std_compact(obj)
