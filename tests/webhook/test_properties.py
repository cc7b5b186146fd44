"""Property tests: no body makes the payload decoder raise anything but PayloadError, no decoded
alert makes any format adapter raise, and no header set makes authentication raise anything but
AuthError (which the receiver answers with 401: never a 500)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from connectors.webhook import auth, formats, payload

# Keys that steer the adapters: product markers, indicator fields, dotted paths, odd dots.
KEYS = st.sampled_from([
    "context", "alerts", "kibana.alert.uuid", "object", "properties", "relatedEntities", "kind",
    "address", "url", "hashValue", "result", "sid", "search_name", "all_fields", "rule", "agent",
    "level", "id", "offense_source", "collectionElements", "metadata", "eventType", "event",
    "threatInfo", "data", "objectType", "observables", "artifacts", "dataType", "type", "value",
    "class_uid", "event_definition_id", "SearchName", "alert_id", "message", "source.ip", "ip",
    "hash", "md5", "sha256", "a.b", ".x", "y.", "a..b", "operation", "last_updated_time",
]) | st.text(max_size=8)  # fmt: skip
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "203.0.113.66",
            "10.0.0.1,203.0.113.9",
            "hxxp://evil[.]example/x",
            "DetectionSummaryEvent",
            "alert",
            "44d88612fea8a8f36de82e1278abb02f",
            "",
            " , ",
            '{"a": 1}',
        ]
    )  # fmt: skip
    | st.text(max_size=40)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)


def frame(docs, how):
    if how == "one":
        return json.dumps(docs[0]).encode()
    if how == "array":
        return json.dumps(docs).encode()
    if how == "ndjson":
        return "\n".join(json.dumps(d) for d in docs).encode()
    if how == "concat":
        return "".join(json.dumps(d) for d in docs).encode()
    return json.dumps(json.dumps(docs[0])).encode()  # JSON inside a string


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(JSON, min_size=1, max_size=3),
    st.sampled_from(["one", "array", "ndjson", "concat", "string"]),
)
def test_no_alert_makes_an_adapter_raise(docs, how):
    try:
        decoded = payload.decode(frame(docs, how))
    except payload.PayloadError:
        return
    assert decoded and all(isinstance(d, dict) for d in decoded)
    for fmt in formats.FORMATS:
        formats.batch_key(fmt, decoded)
        for d in decoded:
            used, values = formats.indicators(fmt, d)
            assert used in formats.FORMATS and all(isinstance(v, str) for v in values)
            formats.idempotency_key(fmt, d)
    assert formats.detect(decoded[0]) in formats.FORMATS


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_no_bytes_make_the_decoder_raise(raw):
    for body in (raw, b"{" + raw, raw + b"}", b'"' + raw + b'"'):
        try:
            payload.decode(body)
        except payload.PayloadError:
            pass


HEADER_NAMES = st.sampled_from([
    "Authorization", "X-Hub-Signature-256", "webhook-id", "webhook-timestamp",
    "webhook-signature", "X-Webhook-Token",
])  # fmt: skip
HEADER_VALUES = st.text(max_size=60) | st.sampled_from(
    ["Basic ", "Basic Zm9vOmJhcg==", "Basic \u00ff\u00fe", "Bearer ", "sha256=", "v1,", "²",
     "9" * 5000, "v1,abc v2,def", "1700000000"]
)  # fmt: skip


@hsettings(max_examples=400, deadline=None)
@given(
    st.sampled_from(auth.SCHEMES if hasattr(auth, "SCHEMES") else
                    ("standard", "github", "bearer", "header", "basic", "url", "none")),
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
    st.binary(max_size=50),
    st.none() | st.text(max_size=20),
)  # fmt: skip
# Timestamps that str.isdigit() accepts and int() refuses (each was a 500 once).
@example("standard", {"webhook-id": "m", "webhook-timestamp": "²", "webhook-signature": "v1,"},
         b"", None)  # fmt: skip
@example("standard", {"webhook-id": "m", "webhook-timestamp": "9" * 5000,
                      "webhook-signature": "v1,"}, b"", None)  # fmt: skip
def test_no_headers_make_auth_raise_anything_but_autherror(scheme, headers, body, token):
    secret = "whsec_" + "QUJD" * 8
    try:
        auth.verify(scheme, secret, headers, body, token, "X-Webhook-Token", "siem",
                    auth.ReplayGuard())  # fmt: skip
    except auth.AuthError:
        return
    assert scheme == "none"  # nothing random gets through a real scheme
