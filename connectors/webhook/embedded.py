"""JSON documents that templated senders put inside a string field (Sumo Logic's
`search_results`, Splunk's `result`, Datadog and Graylog bodies): parsed, so that their fields
are read as structured fields. Bounded: a total size per alert, a few levels of JSON inside JSON
inside JSON, the payload's nesting limit; explicit stacks, never recursion."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from .payload import DECODER, MAX_DEPTH, PayloadError, unflatten

MAX_CHARS = 1 << 20  # characters of embedded JSON parsed per alert
MAX_LEVELS = 3  # JSON in a string in JSON in a string ...


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d <= MAX_DEPTH and isinstance(v, (dict, list)):
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _parse(text: str) -> Any:
    """The object or array in `text`, unflattened; None when it is not one."""
    s = text.strip()
    if len(s) < 2 or (s[0], s[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        value = DECODER.decode(s)
    except (ValueError, RecursionError):  # PayloadError is a ValueError
        return None
    try:
        if isinstance(value, dict):
            return unflatten(value)
        if isinstance(value, list):
            return [unflatten(v) if isinstance(v, dict) else v for v in value]
    except PayloadError:
        return None
    return None


def expand(doc: Any, text_key: Callable[[str], bool]) -> Tuple[Any, List[str]]:
    """(a copy of `doc` with embedded JSON parsed in place, the original strings of those that
    sat in free-text fields, per `text_key(field name)`: they stay free text as well)."""
    root: List[Any] = [doc]
    texts: List[str] = []
    budget = MAX_CHARS
    # (container, key in it, nesting depth of the container, JSON-in-string level)
    stack: List[Tuple[Any, Any, int, int]] = [(root, 0, 0, 0)]
    while stack:
        node, key, depth, level = stack.pop()
        value = node[key]
        if isinstance(value, dict):
            node[key] = value = dict(value)  # copy on the way down: the sender's alert is kept
            stack.extend((value, k, depth + 1, level) for k in value)
        elif isinstance(value, list):
            node[key] = value = list(value)
            stack.extend((value, i, depth + 1, level) for i in range(len(value)))
        elif (
            isinstance(value, str)
            and level < MAX_LEVELS
            and len(value) <= budget
            and value[:1] in "{[ \t\r\n"
        ):
            parsed = _parse(value)
            if parsed is None or depth + _depth(parsed) > MAX_DEPTH:
                continue
            budget -= len(value)
            if isinstance(key, str) and text_key(key):
                texts.append(value)
            node[key] = parsed
            stack.append((node, key, depth, level + 1))
    return root[0], texts
