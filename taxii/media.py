"""Media types: lenient in (`*/*`, application/json, application/taxii+json with or without a
version), strict out (errors.MEDIA on every answer)."""

from __future__ import annotations

import re

from aiohttp import web

from .errors import MEDIA, TaxiiError

ACCEPTED = ("application/taxii+json", "application/json", "*/*", "application/*")
BODY_TYPES = ("application/taxii+json", "application/json")
VERSION = re.compile(r"version\s*=\s*\"?([\d.]+)")


def accepts(header: str) -> bool:
    """Whether an Accept header admits TAXII 2.1 JSON (an explicit other version does not)."""
    for part in (header or "*/*").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ACCEPTED:
            version = VERSION.search(part)
            if version is None or version.group(1) == "2.1":
                return True
    return False


def check_accept(request: web.Request) -> None:
    if not accepts(request.headers.get("Accept", "*/*")):
        raise TaxiiError(406, f"this server answers {MEDIA}")


def check_body_type(request: web.Request) -> None:
    header = request.headers.get("Content-Type", "")
    media = header.split(";")[0].strip().lower()
    version = VERSION.search(header)
    if media not in BODY_TYPES or (version is not None and version.group(1) != "2.1"):
        raise TaxiiError(415, f"send {MEDIA}")
