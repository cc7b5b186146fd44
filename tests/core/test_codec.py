"""The hot-path JSON codec gives what the standard library gives, with orjson and without it
(the Splunk app ships no compiled code, so there it runs on the standard library)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.core import codec

# What VirusTotal sends and what we store: 64-bit integers, finite floats (see codec's docstring)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(codec, "orjson", None)
    else:
        assert codec.orjson is not None, "orjson is a dependency of the CLI and the servers"
    return request.param


@given(doc=documents)
def test_loads_reads_what_the_standard_library_reads(doc):
    text = json.dumps(doc)
    for orjson in (codec.orjson, None):
        codec_orjson, codec.orjson = codec.orjson, orjson
        try:
            assert codec.loads(text.encode()) == json.loads(text)
            assert codec.loads(text) == json.loads(text)
        finally:
            codec.orjson = codec_orjson


@given(doc=documents)
def test_dumps_reads_back_the_same(doc):
    for orjson in (codec.orjson, None):
        codec_orjson, codec.orjson = codec.orjson, orjson
        try:
            assert json.loads(codec.dumps(doc)) == doc
        finally:
            codec.orjson = codec_orjson


def test_dumps_is_compact(backend):
    assert codec.dumps({"a": [1, {"b": "c: d"}]}) == '{"a":[1,{"b":"c: d"}]}'


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"n": NaN}', "nan"),  # orjson refuses NaN
        (b'{"s": "\\ud800"}', "\ud800"),  # a lone surrogate
        ('{"s": "é"}'.encode("utf-16"), "é"),  # json.loads detects UTF-16 bytes
    ],
)
def test_what_orjson_refuses_the_standard_library_decides(backend, raw, expected):
    value = list(codec.loads(raw).values())[0]
    assert (str(value) if expected == "nan" else value) == expected


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe\xfa", b"[1,]", b""])
def test_bad_json_raises_value_error(backend, raw):
    with pytest.raises(ValueError):
        codec.loads(raw)


def test_an_integer_past_64_bits_reads_as_a_number(backend):
    """orjson reads it as a float (codec's docstring), the standard library exactly."""
    value = codec.loads(b'{"n": 123456789012345678901234567890}')["n"]
    if backend == "orjson":
        assert isinstance(value, float) and value == pytest.approx(1.2345678901234568e29)
    else:
        assert value == 123456789012345678901234567890


def test_dumps_keeps_big_integers_and_surrogates(backend):
    doc = {"big": 2**80, "s": "\ud800", "t": ("a", 1)}
    assert json.loads(codec.dumps(doc)) == {"big": 2**80, "s": "\ud800", "t": ["a", 1]}
