"""vtlookup_support/canonical.py: a name it recognises is exactly what the core's parse makes of
it (or one parse refuses only for want of a public suffix, which no KV store document can have)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.core.observable import InvalidObservable, parse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support import canonical  # noqa: E402

KINDS = (None, "domain")
LABEL = st.text(alphabet="abcxyz019-.ZQ_é:[]", min_size=1, max_size=12)
NAMES = st.lists(LABEL, min_size=1, max_size=4).map(".".join) | st.sampled_from(
    ["com", "co.uk", "zip", "xn--bcher-kva.example", "example.com.", "1.2.3.4", "a.b.c.d.e.f"]
).flatmap(lambda suffix: st.text(alphabet="ab1-.", max_size=8).map(lambda p: p + "." + suffix))


def agrees(value: str, kind) -> bool:
    obs = canonical.domain(value, kind)
    if obs is None:
        return True
    try:
        parsed = parse(value, kind)
    except InvalidObservable as exc:
        return "public suffix" in str(exc)
    return parsed == obs and parsed.cache_key == obs.cache_key


@settings(max_examples=1000, deadline=None)
@given(NAMES, st.sampled_from(KINDS))
def test_a_recognised_name_is_what_parse_makes_of_it(value, kind):
    assert agrees(value, kind)


@pytest.mark.parametrize(
    "value, kind, known",
    [
        ("host1.bench-example.com", None, True),
        ("host1.bench-example.com", "domain", True),
        ("Host1.example.com", None, False),  # parse lower-cases it
        ("example.com.", None, False),
        ("invoice.zip", None, False),  # auto-detection refuses bare file names
        ("invoice.zip", "domain", True),
        ("xn--bcher-kva.example", None, False),
        ("1.2.3.4", None, False),
        ("evil[.]com", None, False),
        ("example.com", "url", False),
        ("-bad.example.com", None, False),
    ],
)
def test_only_names_in_canonical_form_are_recognised(value, kind, known):
    assert (canonical.domain(value, kind) is not None) is known
    assert agrees(value, kind)
