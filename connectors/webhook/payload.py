"""Alert bodies as senders really send them: one object, an array, NDJSON or concatenated
objects, JSON encoded inside a string, flat dotted keys mixed with nesting. Anything else is a
PayloadError with a clear message, never an exception of another kind."""

from __future__ import annotations

import json
from typing import Any, Dict, List

MAX_DEPTH = 64
MAX_OBJECTS = 1000


class PayloadError(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise PayloadError(f"{name} is not JSON")  # Python accepts it; our answers must stay JSON


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise PayloadError(f"number {text[:20]} is out of range")
    return value


DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def decode(raw: bytes) -> List[Dict[str, Any]]:
    """The alert objects in a request body."""
    if not raw.strip():
        raise PayloadError("empty body")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start})") from None
    docs = _documents(text)
    out: List[Dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, str):  # JSON inside a string (templated senders)
            try:
                doc = DECODER.decode(doc)
            except PayloadError:
                raise
            except ValueError:
                raise PayloadError("a string that is not JSON") from None
            except RecursionError:
                raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        items = doc if isinstance(doc, list) else [doc]
        for item in items:
            if not isinstance(item, dict):
                raise PayloadError("alerts must be JSON objects")
            _check_depth(item)  # before unflattening, so that it walks a bounded tree
            flat = unflatten(item)
            _check_depth(flat)  # and after: dotted keys make new levels ("k.k.k...")
            out.append(flat)
    if not out:
        raise PayloadError("no alert objects in the body")
    if len(out) > MAX_OBJECTS:
        raise PayloadError(f"more than {MAX_OBJECTS} alerts in one request")
    return out


def _documents(text: str) -> List[Any]:
    """One JSON value, or several back to back (NDJSON, concatenated objects)."""
    docs, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        try:
            doc, i = DECODER.raw_decode(text, i)
        except PayloadError:
            raise
        except ValueError as exc:
            raise PayloadError(
                f"malformed JSON at character {i}: {str(exc).split(':')[0]}"
            ) from None
        except RecursionError:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        docs.append(doc)
    return docs


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def unflatten(doc: Dict[str, Any]) -> Dict[str, Any]:
    """{"source.ip": x, "host": {...}} -> {"source": {"ip": x}, "host": {...}}; a key that is
    both a value and a prefix keeps the value under its full dotted name. Without recursion:
    nested objects are unflattened innermost first; a key of more than MAX_DEPTH parts is a
    PayloadError (the caller checks the depth of the result too)."""
    order: List[Dict[str, Any]] = []  # every object, parents before their children
    stack = [doc]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(v for v in node.values() if isinstance(v, dict))
    done: Dict[int, Dict[str, Any]] = {}
    for node in reversed(order):  # children first: their results are ready for the parent
        done[id(node)] = _unflatten_one(node, done)
    return done[id(doc)]


def _unflatten_one(doc: Dict[str, Any], done: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            value = done[id(value)]
        if "." not in key or key.startswith(".") or key.endswith("."):
            _merge(out, key, value)
            continue
        parts = key.split(".")
        if len(parts) > MAX_DEPTH:
            raise PayloadError(f"a key with more than {MAX_DEPTH} dotted parts")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    node = None  # type: ignore[assignment]
                    break
                nxt = node[part] = {}
            node = nxt
        if node is None:
            out[key] = value
        else:
            _merge(node, parts[-1], value)
    return out


def _merge(node: Dict[str, Any], key: str, value: Any) -> None:
    """node[key] = value, where two objects meet key by key (an explicit stack, no recursion:
    the keys of one object go into disjoint subtrees, so their order does not matter)."""
    stack = [(node, key, value)]
    while stack:
        n, k, v = stack.pop()
        if isinstance(n.get(k), dict) and isinstance(v, dict):
            stack.extend((n[k], kk, vv) for kk, vv in v.items())
        else:
            n[k] = v
