"""Checks on POSTed envelopes and objects: what is stored must be STIX 2.1 a consumer can use.
Each invalid object is reported in the status resource; the valid ones are stored."""

from __future__ import annotations

import json
from typing import Any, List

import stix2

from .errors import TaxiiError
from .filters import ID_RE, TS_RE


def envelope_objects(raw: bytes) -> List[Any]:
    """The objects list of a TAXII envelope (or of a STIX bundle: some producers send one)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TaxiiError(400, "body is not JSON (UTF-8)") from None
    objects = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objects, list) or not objects:
        raise TaxiiError(422, "an envelope with a non-empty objects list is required")
    return objects


def problem(obj: Any) -> str:
    """Why an object is not stored, or "" when it is fine."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    oid, otype = obj.get("id"), obj.get("type")
    if (
        not isinstance(otype, str)
        or not isinstance(oid, str)
        or not ID_RE.match(oid)
        or not oid.startswith(otype + "--")
    ):
        return "type and id (<type>--<UUID>) are required and must agree"
    if obj.get("spec_version", "2.1") != "2.1":
        return "only spec_version 2.1 is accepted"
    for key in ("created", "modified"):
        if key in obj and (not isinstance(obj[key], str) or not TS_RE.match(obj[key])):
            return f"{key} must be an RFC 3339 UTC timestamp"
    if otype != "marking-definition" and "created" in obj and "modified" not in obj:
        return "modified is required on versioned objects"
    try:  # the full STIX 2.1 rules (patterns, vocabularies, references); custom ones allowed
        stix2.parse(obj, allow_custom=True)
    except Exception as exc:  # stix2 raises many exception types for invalid objects
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"invalid STIX 2.1: {first[:300]}"
    return ""
