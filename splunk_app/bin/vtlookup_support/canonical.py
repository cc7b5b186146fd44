"""Domains already written the way the core writes them, recognised without parsing.

Looking a value up in the KV store needs its cache key. For a domain, connectors.core's parse
checks the name against the public suffix list (tldextract: ~0.2 s to import, ~10 us a name),
which a search answered from the KV store spent on every distinct name. A name that is already
in canonical form (lower case ASCII labels, no trailing dot, no punycode, not a bare file name
under auto-detection) is its own normalised value, so its key is known without that check; only
whether the name has a public suffix is left open, and a KV store document under the key
answers that: the core stores only what parsed. A name without a document takes the full path.
"""

from __future__ import annotations

import re
from typing import Optional

from connectors.core.observable import FILE_EXTENSION_TLDS, MAX_DOMAIN_LENGTH, Kind, Observable

# connectors.core.observable's host name rule, at least two labels, the last with a letter (so
# no IPv4 address), nothing parse would clean, refang or lower-case.
_NAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def domain(value: str, kind: Optional[str]) -> Optional[Observable]:
    """The Observable parse(value, kind) returns if it accepts the value as a domain; None
    when that takes the full parse to know. kind: None (auto) or the command's type option."""
    if kind not in (None, "domain") or len(value) > MAX_DOMAIN_LENGTH:
        return None
    if not _NAME.fullmatch(value) or "xn--" in value:
        return None
    if kind is None and value.rpartition(".")[2] in FILE_EXTENSION_TLDS:
        return None  # auto-detection refuses bare file names
    return Observable(Kind.DOMAIN, value, value)
