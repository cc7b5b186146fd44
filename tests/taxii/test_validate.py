"""The fast check on POSTed objects gives exactly the answers stix2.parse gives: generated valid
and invalid indicators and observables (properties swapped for near misses, patterns built from
tokens around the grammar's edges) get the same problem() text with and without the fast path,
and what the fast path vouches for stix2 accepts."""

from __future__ import annotations

import json
import os
import time

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict
from taxii.validate import problem, read_envelope, stix2_problem, surely_valid

SETTINGS = hsettings(max_examples=int(os.environ.get("VALIDATE_EXAMPLES", "600")), deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
UUID = "0f8e1b5c-3d4a-4b2c-9e1f-2a3b4c5d6e7f"


def _enrichment(value: str, kind: str = "domain") -> Enrichment:
    return Enrichment(value=value, kind=kind, verdict=Verdict.MALICIOUS, score=90, reason="t",
                      normalized=value, vt_id=value, link="https://x.example/")  # fmt: skip


BASE = stix.indicator(_enrichment("evil.example.com"), time.time())
SHA256 = "a" * 64

TYPES = ["domain-name", "file", "ipv4-addr", "url", "x-custom-1", "true", "false", "Domain-Name",
         "1abc", "a--b", "a-", "_x", "AND", "t", "b", "h", "network-traffic"]  # fmt: skip
PATHS = ["value", "name", "hashes.MD5", "hashes.'SHA-256'", "hashes.'SHA-1'", "hashes.sha256",
         "hashes.'MD5'", "x.hashes.'SHA-256'", "hashes.SSDEEP", "hashes.'MD6'", "hashes.foo",
         "true", "false", "value.true", "_a", "A", "a_b9", "9a", "a-b", "hashes", "'value'",
         "extensions.'x-ext'.k", "t", "x.t", "ref[0]", "ref[*].value", "MD5", "hashes.AND", "IN",
         "x.SECONDS", "hashes.'sha-256'", "hashes.SHA3-256", "Hashes.MD5", "x_Y.Z9"]  # fmt: skip
OPS = ["=", " = ", "= ", " =", "  =  ", "!=", " LIKE ", " MATCHES ", "==", " = t", " = b",
       " = h"]  # fmt: skip
TEXTS = st.one_of(
    st.sampled_from(["evil.example.com", "", "a" * 32, "A" * 32, "a" * 40, "a" * 63, SHA256,
                     "g" * 64, "a" * 56, "a" * 96, "a" * 128, "3:ab+/:.", "x'y", "x\\y",
                     "x\\'y", "2020-01-01T00:00:00Z", "é", "\u2028", "\n", "AND", "\U0001f600"]),
    st.text(alphabet="ab'\\ -:.", max_size=6),
)  # fmt: skip
JOINS = [" AND ", " OR ", "AND", " and ", "  OR  ", " FOLLOWEDBY ", "] AND [", " OR\t", " AND  "]
OPENERS = ["[", "[ ", "", "(", "([", "  [", "\t["]
CLOSERS = ["]", " ]", "", ")", "])", "]  ", "] WITHIN 5 SECONDS", "]\n"]


@st.composite
def patterns(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        parts.append(draw(st.sampled_from(TYPES)) + ":" + draw(st.sampled_from(PATHS))
                     + draw(st.sampled_from(OPS)) + "'" + draw(TEXTS) + "'")  # fmt: skip
    body = parts[0]
    for p in parts[1:]:
        body += draw(st.sampled_from(JOINS)) + p
    return draw(st.sampled_from(OPENERS)) + body + draw(st.sampled_from(CLOSERS))


STAMPS = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.5Z",
          "2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00.1234567Z", "2025-12-31T23:59:59Z",
          "2030-01-01T00:00:00.000Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
          "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z", "0000-01-01T00:00:00Z",
          "2026-01-01 00:00:00Z", "2026-01-01T00:00:00+00:00", "2000-01-01T00:00:00Z",
          "1999-12-31T23:59:59.999Z", 5, None, ""]  # fmt: skip
NOT4122 = "0f8e1b5c-3d4a-4b2c-1e1f-2a3b4c5d6e7f"
REFS = [f"identity--{UUID}", f"identity--{UUID.upper()}", f"identity--{NOT4122}",
        f"marking-definition--{UUID}", f"malware--{UUID}", "identity--x", 5, None]  # fmt: skip
EXTREFS = [
    [{"source_name": "VirusTotal", "url": "https://x"}],
    [{"source_name": "VirusTotal"}],
    [{"source_name": "cve", "external_id": "CVE-2020-1234"}],
    [{"source_name": "cve", "external_id": "nope"}],
    [{"source_name": "capec", "external_id": "CAPEC-1"}],
    [{"source_name": "x", "external_id": "1", "hashes": {"SHA-256": SHA256}}],
    [{"source_name": "x", "description": 5}],
    [{"url": "https://x"}], [], ["x"], "x", None, [{"source_name": "x", "x_custom": "1"}],
]  # fmt: skip
VALUES = {
    "spec_version": ["2.1", "2.0", 2.1, None],
    "id": [f"indicator--{UUID}", f"indicator--{UUID.upper()}", f"indicator--{UUID[:-1]}g",
           f"indicator--{NOT4122}", "indicator--00000000-0000-0000-0000-000000000000",
           f"malware--{UUID}"],
    "created": STAMPS, "modified": STAMPS, "valid_from": STAMPS, "valid_until": STAMPS,
    "name": ["n", 5, "", None, ["n"]], "description": ["d", 5, None, True],
    "indicator_types": [["malicious-activity"], ["anything"], [], "malicious-activity", [5], None,
                        ["a", "b"], [""]],
    "labels": [["x"], [], "x", [5], None],
    "pattern_type": ["stix", "sigma", "STIX", 5, None, ""],
    "pattern_version": ["2.1", "2.0", "2", 2.1, None, ""],
    "confidence": [0, 100, 101, -1, 50, "50", 5.0, True, None, 1000],
    "revoked": [True, False, "true", 1, 0, "no", None],
    "lang": ["en", 5, None],
    "created_by_ref": REFS, "object_marking_refs": [[r] for r in REFS] + [[], "x", None],
    "external_references": EXTREFS,
    "kill_chain_phases": [[{"kill_chain_name": "k", "phase_name": "p"}],
                          [{"kill_chain_name": "k"}]],
    "x_custom": ["x", {"a": 1}, None],
    "extensions": [{}, {"x": {}}],
    "granular_markings": [[{"selectors": ["name"], "marking_ref": f"marking-definition--{UUID}"}]],
}  # fmt: skip


@st.composite
def indicators(draw) -> dict:
    obj = dict(BASE)
    for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True)):
        obj[key] = draw(st.sampled_from(VALUES[key]))
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del obj[key]
    if draw(st.booleans()):
        obj["pattern"] = draw(patterns())
    return obj


SCO_VALUES = {
    "type": ["domain-name", "url", "ipv4-addr", "ipv6-addr", "file", "x-thing"],
    "value": ["evil.example.com", "1.2.3.4", "", 5, None, ["x"]],
    "defanged": [True, False, "true", 1, None, "x"],
    "spec_version": ["2.1", "2.0", None],
    "object_marking_refs": [[r] for r in REFS] + [[], None],
    "resolves_to_refs": [[f"ipv4-addr--{UUID}"], [f"mac-addr--{UUID}"], ["x"]],
    "created_by_ref": REFS, "x_custom": ["x"], "extensions": [{}, {"x": {}}],
    "created": STAMPS[:2], "modified": STAMPS[:2],
    "id_uuid": [UUID, UUID.upper(), "0f8e1b5c-3d4a-4b2c-1e1f-2a3b4c5d6e7f"],
}  # fmt: skip


@st.composite
def observables(draw) -> dict:
    obj = {"type": "domain-name", "spec_version": "2.1", "value": "evil.example.com"}
    uuid = UUID
    for key in draw(st.lists(st.sampled_from(sorted(SCO_VALUES)), max_size=4, unique=True)):
        if key == "id_uuid":
            uuid = draw(st.sampled_from(SCO_VALUES[key]))
        else:
            obj[key] = draw(st.sampled_from(SCO_VALUES[key]))
    if not isinstance(obj.get("type"), str):
        obj["type"] = "domain-name"
    obj["id"] = f"{obj['type']}--{uuid}"
    if draw(st.booleans()) and len(obj) > 3:
        del obj[draw(st.sampled_from(sorted(k for k in obj if k not in ("type", "id"))))]
    return obj


def _same(obj: dict) -> None:
    fast = problem(obj)
    assert fast == problem(obj, fast=False), obj
    typ, oid = obj.get("type"), obj.get("id")
    agree = isinstance(typ, str) and isinstance(oid, str) and oid.startswith(typ + "--")
    if agree and surely_valid(obj):
        assert stix2_problem(obj) == "", obj


@SETTINGS
@given(indicators())
@example({**BASE, "valid_until": "2000-01-01T00:00:00Z", "valid_from": None})
@example(
    {k: v for k, v in BASE.items() if k != "valid_from"} | {"valid_until": "2000-01-01T00:00:00Z"}
)
@example({**BASE, "pattern": "[file:hashes.'SHA-256' = '" + "a" * 63 + "']"})
@example({**BASE, "pattern": "[true:value = 'x']"})
@example({**BASE, "modified": "2025-01-01T00:00:00Z", "created": "2026-01-01T00:00:00Z"})
def test_indicators_get_the_answers_stix2_gives(obj):
    _same(obj)


@SETTINGS
@given(patterns())
def test_patterns_get_the_answers_the_pattern_validator_gives(pattern):
    _same({**BASE, "pattern": pattern})


@SETTINGS
@given(observables())
def test_observables_get_the_answers_stix2_gives(obj):
    _same(obj)


def test_the_objects_we_publish_take_the_fast_path():
    now = time.time()
    objs = [stix.indicator(_enrichment(f"h{i}.example.com"), now) for i in range(3)]
    objs.append(stix.indicator(_enrichment("1.2.3.4", "ipv4"), now))
    objs.append(stix.indicator(_enrichment("https://evil.example.com/x?a='b'", "url"), now))
    objs.append(stix.indicator(_enrichment(SHA256, "sha256"), now))
    objs.append({"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{UUID}",
                 "value": "evil.example.com"})  # fmt: skip
    objs.append({"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{UUID}",
                 "value": "1.2.3.4", "defanged": False})  # fmt: skip
    fast = [o for o in objs if surely_valid(o)]
    assert len(fast) >= len(objs) - 1, [o for o in objs if not surely_valid(o)]  # the quoted URL
    for o in objs:
        assert problem(o) == "" == stix2_problem(o)


TOKENS = ['"x"', "NaN", "-Infinity", "Infinity", "1e999", "-1E400", "1.5", "1" + "0" * 400 + ".0",
          "10" * 200, '"\\ud800"', '"\\uDBFF"', '"\\ud83d\\ude00"', '"\\u00e9"', '"\\\\ud800"',
          '"caf\u00e9"', "[1e999]", '{"k": NaN}', '{"\\udc00": 1}', "true", "null"]  # fmt: skip


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(["name", "x_extra", "conf"])),
                min_size=1, max_size=3),
       st.sampled_from(["utf-8", "utf-16"]))  # fmt: skip
@example([('"\udc00"', "name")], "utf-8")
def test_a_body_found_clean_changes_no_answer(tokens, encoding):
    """read_envelope() may skip the per-object walk only where it finds nothing it refuses."""
    objs = [json.dumps(BASE), json.dumps(BASE)]
    for i, (token, key) in enumerate(tokens):
        objs[i % 2] = objs[i % 2][:-1] + f', "{key}": {token}}}'
    try:
        raw = ('{"objects": [' + ", ".join(objs) + "]}").encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        return
    objects, clean = read_envelope(raw)
    assert [problem(o, clean=clean) for o in objects] == [problem(o) for o in objects]
    assert [problem(o, clean=clean) for o in objects] == [problem(o, fast=False) for o in objects]


def test_a_plain_body_is_clean_and_a_tainted_one_is_not():
    plain = json.dumps({"objects": [BASE]}).encode()
    assert read_envelope(plain)[1]
    for token in ("NaN", "1e999", '"\\ud800"'):
        tainted = plain[:-3] + f', "x": {token}}}]}}'.encode()
        assert not read_envelope(tainted)[1]
        assert problem(read_envelope(tainted)[0][0]) != ""
