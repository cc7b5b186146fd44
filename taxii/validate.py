"""Checks on POSTed envelopes and objects: what is stored must be STIX 2.1 a consumer can use.
Each invalid object is reported in the status resource; the valid ones are stored."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, Dict, List, Optional

import stix2

from .errors import TaxiiError
from .filters import ID_RE, TS_RE

log = logging.getLogger(__name__)
# json.dumps spells a lone surrogate as an escape without its pair (emoji are escaped pairs)
LONE_ESCAPE = re.compile(
    r"\\ud(?:[89ab][0-9a-f]{2}(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2}\\ud)[c-f][0-9a-f]{2})"
)


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


def unwritable(value: Any) -> Optional[str]:
    """Why `value` cannot be written out as strict JSON in UTF-8, or None: Python's json reads
    NaN, Infinity and 1e999 (as inf) and lone surrogates ("\\ud800"), and what is stored is served
    to every consumer of the collection. Walked without recursion."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return "numbers must be finite (NaN, Infinity and 1e999 are not JSON)"
        elif isinstance(v, str):
            if not v.isascii() and not _encodes(v):
                return "text must be valid Unicode (a lone surrogate such as \\ud800 is not)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def stored_body_ok(body: str) -> bool:
    """Whether a stored body (json.dumps output: ASCII, surrogates escaped) is strict JSON in
    valid Unicode; bodies stored before ingest refused such values may hold them."""
    lone = "\\ud" in body and LONE_ESCAPE.search(body)
    if "NaN" not in body and "Infinity" not in body and not lone:
        return True  # the fast path: none of the spellings can be there
    try:
        return unwritable(json.loads(body)) is None
    except (ValueError, RecursionError):
        return False


def repaired(objects: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Objects we build from VirusTotal answers, made storable: a lone surrogate in a threat
    name becomes "?" (the indicator is kept); an object with a non-finite number is left out and
    logged. (What others POST is refused instead, see problem().)"""
    out = []
    for obj in objects:
        if unwritable(obj) is not None:
            text = json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace").decode()
            obj = json.loads(text)
            why = unwritable(obj)
            if why:
                log.warning("object %s not stored: %s", obj.get("id"), why)
                continue
        out.append(obj)
    return out


def problem(obj: Any) -> str:
    """Why an object is not stored, or "" when it is fine."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    bad = unwritable(obj)
    if bad:
        return bad
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
