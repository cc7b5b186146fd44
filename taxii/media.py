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


V20_TAXII = "application/vnd.oasis.taxii+json; version=2.0"
V20_STIX = "application/vnd.oasis.stix+json; version=2.0"
V20_TYPES = ("application/vnd.oasis.taxii+json", "application/vnd.oasis.stix+json")


def wants_v20(header: str) -> bool:
    """Whether an Accept header asks for TAXII 2.0 (FortiGate, taxii2-client v20) and not 2.1."""
    if accepts(header):
        return False
    for part in (header or "").split(","):
        media = part.split(";")[0].strip().lower()
        version = VERSION.search(part)
        if media in V20_TYPES and (version is None or version.group(1) == "2.0"):
            return True
    return False


def check_accept(request: web.Request) -> bool:
    """True when the request is for TAXII 2.0; a 406 when it admits neither 2.1 nor 2.0."""
    header = request.headers.get("Accept", "*/*")
    if wants_v20(header):
        return True
    if not accepts(header):
        raise TaxiiError(406, f"this server answers {MEDIA} (or TAXII 2.0 when asked for it)")
    return False


def check_body_type(request: web.Request) -> None:
    header = request.headers.get("Content-Type", "")
    media = header.split(";")[0].strip().lower()
    version = VERSION.search(header)
    if media not in BODY_TYPES or (version is not None and version.group(1) != "2.1"):
        raise TaxiiError(415, f"send {MEDIA}")
