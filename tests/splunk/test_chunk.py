"""vtlookup's CSV pass-through against splunklib's own reader and RecordWriterV2: for the same
records and answers, the reply must be what splunklib would have written."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splunklib.searchcommands.internals import RecordWriterV2
from splunklib.searchcommands.search_command import SearchCommand

from . import harness
from .conftest import ROOT

sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support import chunk  # noqa: E402

OUT = ["vt_verdict", "vt_tags", "vt_note"]
ANSWERS: Dict[str, List[Any]] = {
    "evil.example": ["malicious", ["trojan", "rat $x"], 'say "hi", then\r\nleave'],
    "ok.example": ["harmless", [], "caf\u00e9 \u2603"],
    "one.example": ["undetected", ["single"], ""],
}
EMPTY = ["", "", ""]


def splunklib_reply(body: str, field: str) -> str:
    """What splunklib's StreamingCommand path writes: records read by its reader, the answer's
    fields set on each record, written by its RecordWriterV2."""
    reader = SearchCommand.__new__(SearchCommand)
    writer = RecordWriterV2(io.BytesIO())
    for record in reader._read_csv_records(io.StringIO(body)):
        value = record.get(field)
        answer = ANSWERS.get(value, EMPTY) if isinstance(value, str) else EMPTY
        record.update(zip(OUT, answer))
        writer.write_record(record)
    return writer._buffer.getvalue()


def our_reply(body: str, field: str) -> str:
    table = chunk.Table(body, field, OUT)
    out = [table.header_line(OUT)]
    for rows, texts in table.batches(2):  # small batches: the joins between them count too
        tails = []
        for row in rows:
            values = table.values(row, SearchCommand._decode_list)
            answer = ANSWERS.get(values[0], EMPTY) if len(values) == 1 else EMPTY
            tails.append(chunk.encode(answer))
        out.append(table.lines(texts, tails))
    return "".join(out)


RECORDS = [
    {"_time": "1", "dest": "evil.example", "note": 'quoted "x", comma'},
    {"_time": "2", "dest": "ok.example", "note": "line one\r\nline two"},
    {"_time": "3", "dest": "unknown.example", "note": "\u201cunicode\u201d"},
    {"_time": "4", "dest": "", "note": ""},
    {"_time": "5", "dest": "one.example", "note": ["a", "b$c", ""]},
    {"_time": "6", "dest": "evil.example", "note": "trailing\n"},
]


def test_same_bytes_as_splunklib():
    body = harness.records_to_csv(RECORDS).decode("utf-8")
    assert our_reply(body, "dest") == splunklib_reply(body, "dest")


def test_same_records_when_input_columns_are_replaced_or_rows_ragged():
    # An earlier vtlookup's columns are replaced; short and long rows are padded / cut.
    body = (
        "dest,__mv_dest,vt_verdict,__mv_vt_verdict,x,__mv_x\r\n"
        "evil.example,,stale,,1,\r\n"
        "ok.example,,stale\r\n"
        "one.example,,stale,,3,,extra\r\n"
    )
    ours = harness.csv_to_records(our_reply(body, "dest").encode())
    theirs = harness.csv_to_records(splunklib_reply(body, "dest").encode())
    assert ours == theirs
    assert [r["vt_verdict"] for r in ours] == ["malicious", "harmless", "undetected"]
    assert "x" in ours[1] and ours[1]["x"] == ""


def test_multivalue_field_uses_its_mv_cell():
    body = harness.records_to_csv([{"dest": ["evil.example", " ", "ok.example"]}]).decode()
    table = chunk.Table(body, "dest", OUT)
    (rows, _), = table.batches(10)  # fmt: skip
    assert table.values(rows[0], SearchCommand._decode_list) == ["evil.example", "ok.example"]
    assert chunk.Table(body, "missing", OUT).values(rows[0], SearchCommand._decode_list) == []


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_blank_values_are_not_values(value):
    body = harness.records_to_csv([{"dest": value}]).decode()
    table = chunk.Table(body, "dest", OUT)
    (rows, _), = table.batches(10)  # fmt: skip
    assert table.values(rows[0], SearchCommand._decode_list) == []


def test_encode_matches_splunklib_cells():
    values = [["a"], ["a", "b$"], [], None, "x,y", 'q"']
    names = [f"f{i}" for i in range(len(values))]
    writer = RecordWriterV2(io.BytesIO())
    writer.write_record(dict(zip(names, values)))
    head, line = writer._buffer.getvalue().split("\r\n", 1)
    assert chunk.encode(values) + "\r\n" == line


def test_chunk_writer_frames_its_bytes_and_survives_lone_surrogates():
    out = io.BytesIO()
    writer = chunk.ChunkWriter(out)
    writer.write_message("WARN", "one {}", "warning")
    writer.add("dest,__mv_dest\r\n")
    writer.add("caf\u00e9 \ud800,\r\n", records=1)  # a lone surrogate, as JSON can carry
    writer.write_chunk(finished=True)
    head, _, rest = out.getvalue().partition(b"\n")
    meta_len, body_len = (int(x) for x in head.split(b",")[1:])
    assert head.startswith(b"chunked 1.0,") and len(rest) == meta_len + body_len
    assert json.loads(rest[:meta_len]) == {
        "inspector": {"messages": [["WARN", "one warning"]]},
        "finished": True,
    }
    assert rest[meta_len:] == "dest,__mv_dest\r\ncaf\u00e9 \\ud800,\r\n".encode()
    assert writer.committed_record_count == 1
    # The next chunk starts empty.
    writer.write_chunk(finished=True)
    assert out.getvalue().endswith(b'chunked 1.0,17,0\n{"finished":true}')


_TEXT = st.text(alphabet=st.sampled_from(list('ab ,"$\r\n\t;é\\')), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT, st.lists(_TEXT, max_size=3)), min_size=2, max_size=6))
def test_encode_matches_splunklib_for_any_text(values):
    names = [f"f{i}" for i in range(len(values))]
    writer = RecordWriterV2(io.BytesIO())
    writer.write_record(dict(zip(names, values)))
    head, line = writer._buffer.getvalue().split("\r\n", 1)
    assert chunk.encode(values) + "\r\n" == line
