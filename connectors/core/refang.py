"""Undo the usual ways analysts defang indicators (hxxp://evil[.]com, 1.2.3[.]4, user[at]x.org).

One precompiled regex, one pass. The patterns swallow whole runs of brackets, blanks and
backslashes around a token (``[[.]]``, ``\\[ . ]``) so that a replacement can never bring two
pieces together into a new defanged token: that is what makes ``refang`` idempotent without
looping until a fixed point (which would be quadratic on crafted input).
"""

from __future__ import annotations

import re
from typing import Dict

__all__ = ["refang"]

_OPEN = r"[\[\(\{]"
_CLOSE = r"[\]\)\}]"

_PATTERN = re.compile(
    # Defanged schemes, only before "://" in any bracketing: "meow: purr" in prose stays.
    r"(?<!\w)(?P<scheme>h(?:xx|\*\*|xt|tx|x)p(?P<s>s?)|meow(?P<ms>s?)|fxp)"
    r"(?=[\[\(\{\\ \t]*:[\]\)\}\[\(\{\\ \t]*/)"
    # Bracketed tokens: [.] (.) {.} [dot] [ . ] [:] [://] [/] [@] [at] \[.] [[.]] ...
    r"|\\*" + _OPEN + r"[\[\(\{\\ \t]*"
    r"(?P<core>\.|dot|://|:/|:|//|/|@|at)"
    r"(?:[ \t]*" + _CLOSE + r")+"
    # Backslash-escaped dot: evil\.com
    r"|(?P<escdot>\\+\.)",
    re.IGNORECASE,
)

_CORE: Dict[str, str] = {"dot": ".", "at": "@"}
_TRIGGERS = "[({\\:"


def _replace(match: re.Match[str]) -> str:
    core = match.group("core")
    if core is not None:
        return _CORE.get(core.lower(), core)
    if match.group("escdot") is not None:
        return "."
    scheme = match.group("scheme").lower()
    if scheme == "fxp":
        return "ftp"
    return "https" if match.group("s") or match.group("ms") else "http"


def refang(text: str) -> str:
    """Return `text` with defanged URLs, domains, IPs and e-mail addresses restored.

    Prose is left alone: a bare `` dot `` or ``at`` only counts inside brackets, and a defanged
    scheme only before a colon. ``refang(refang(x)) == refang(x)`` for every string.
    """
    # Every pattern needs one of these characters; most log text has none of the brackets.
    if not any(c in text for c in _TRIGGERS):
        return text
    return _PATTERN.sub(_replace, text)
