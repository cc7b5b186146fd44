"""The CSV body of a protocol-v2 execute chunk, passed through row by row.

splunklib turns every row into a dict and encodes every cell of every record again on the way
out; with ~33 output fields (66 columns with their __mv_ twins) that was 90 % of vtlookup's time
and, with its reused StringIO (4 bytes per character after the first truncate), most of its
memory (bench/splunk.py). Here the input cells are copied as they came (multivalue encoding
included), and the enrichment columns are appended as text encoded once per distinct answer.
The bytes are what splunklib's RecordWriterV2 writes for the same records (tests check this).
"""

from __future__ import annotations

import csv
import io
import re
from itertools import islice
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from splunklib.searchcommands.internals import CsvDialect, RecordWriterV2

MV = "__mv_"
END = CsvDialect.lineterminator
_SPECIAL = re.compile("[" + re.escape(CsvDialect.delimiter + CsvDialect.quotechar) + "\r\n]")


def _line(cells: Sequence[Any]) -> str:
    """Cells as one CSV line without its end (a field's own line breaks stay quoted)."""
    buf = io.StringIO()
    csv.writer(buf, dialect=CsvDialect).writerow(cells)
    return buf.getvalue()[: -len(END)]


def _cell(text: str) -> str:
    """One cell as csv's QUOTE_MINIMAL writes it with CsvDialect (quoted when it holds the
    delimiter, the quote or a line break); a csv.writer per answer cost more than the rest of
    encoding it."""
    if _SPECIAL.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def encode(values: Sequence[Any]) -> str:
    """Cells X, __mv_X for each value, as splunklib writes them: a list of several items is
    "a\\nb" and "$a$;$b$"; a one-item list is its item; None and "" are empty."""
    cells: List[str] = []
    for v in values:
        if isinstance(v, list):
            if len(v) > 1:
                cells.append(_cell("\n".join(v)))
                cells.append(_cell("$" + "$;$".join(x.replace("$", "$$") for x in v) + "$"))
                continue
            v = v[0] if v else ""
        cells.append("" if v is None else _cell(v if isinstance(v, str) else str(v)))
        cells.append("")
    return ",".join(cells)


class Table:
    """One chunk's rows. Each row keeps its input text, which is copied verbatim; only rows
    that need it are encoded again: ragged ones, and all rows when input columns named like an
    output field (say from an earlier vtlookup) are dropped for the new answer."""

    def __init__(self, body: str, field: str, outputs: Sequence[str]) -> None:
        self._consumed: List[str] = []
        self._rows = csv.reader(self._lines(body), dialect=CsvDialect)
        self.columns: List[str] = next(self._rows, None) or []
        self._consumed.clear()
        replaced = set(outputs)
        keep = [
            i for i, name in enumerate(self.columns)
            if (name[len(MV):] if name.startswith(MV) else name) not in replaced
        ]  # fmt: skip
        self._keep: Optional[List[int]] = None if len(keep) == len(self.columns) else keep
        self.kept = [self.columns[i] for i in keep]
        self._field = _index(self.columns, field)
        self._mv_field = _index(self.columns, MV + field)
        self.rows = 0

    def _lines(self, body: str) -> Iterator[str]:
        consumed = self._consumed
        for line in io.StringIO(body):
            consumed.append(line)  # copied out as it came, NUL bytes included
            # Python 3.9's csv refuses a NUL anywhere ("line contains NUL"): one event with a
            # binary field would fail the whole search.
            yield line.replace("\x00", "\ufffd") if "\x00" in line else line

    def batches(self, size: int) -> Iterator[Tuple[List[List[str]], List[str]]]:
        """(rows as cells, each exactly as wide as the header; their text without line ends)."""
        width = len(self.columns)
        keep = self._keep
        consumed = self._consumed
        while True:
            rows: List[List[str]] = []
            texts: List[str] = []
            for row in islice(self._rows, size):
                if len(row) != width:  # ragged input: splunklib pads with empty cells too
                    row = (row + [""] * width)[:width]
                    text = None
                else:
                    text = "".join(consumed)
                consumed.clear()
                if keep is not None or text is None:
                    text = _line([row[i] for i in keep] if keep is not None else row)
                else:
                    text = text.rstrip("\r\n") if text.endswith("\n") else text
                rows.append(row)
                texts.append(text)
            if not rows:
                return
            self.rows += len(rows)
            yield rows, texts

    def values(self, row: List[str], decode: Callable[[str], List[str]]) -> List[str]:
        """The field's non-empty values in this row (its __mv_ cell wins when set)."""
        if self._mv_field is not None and row[self._mv_field]:
            return [v for v in decode(row[self._mv_field]) if v.strip()]
        if self._field is None:
            return []
        value = row[self._field]
        return [value] if value.strip() else []

    def header_line(self, output_names: Sequence[str]) -> str:
        head = _line([c for n in output_names for c in (n, MV + n)])
        return (_line(self.kept) + "," + head if self.kept else head) + END

    def lines(self, texts: List[str], tails: List[str]) -> str:
        """Each row's input text followed by its tail (the encoded output columns)."""
        if not self.kept:
            return "".join([tail + END for tail in tails])
        return "".join([text + "," + tail + END for text, tail in zip(texts, tails)])


def _index(columns: List[str], name: str) -> Optional[int]:
    try:
        return columns.index(name)
    except ValueError:
        return None


class ChunkWriter(RecordWriterV2):
    """splunklib 2.1.1's protocol-v2 writer, fed whole CSV lines rather than records. The body
    is kept as UTF-8 bytes and written from that one buffer: splunklib's str buffer (reused
    after truncate, 4 bytes per character), its copy and its encoded copy tripled the peak
    memory of a 50,000-record reply."""

    @classmethod
    def replacing(cls, old: RecordWriterV2) -> ChunkWriter:
        new = cls(old.ofile, old._maxresultrows)
        new._inspector = old._inspector  # messages written so far go out with the next chunk
        return new

    def __init__(self, ofile: Any, maxresultrows: Optional[int] = None) -> None:
        self._body = io.BytesIO()
        super().__init__(ofile, maxresultrows)

    def add(self, text: str, records: int = 0) -> None:
        # backslashreplace: a lone surrogate (JSON allows "\\ud800" in an API answer) must not
        # fail the search; it shows up escaped instead.
        self._body.write(text.encode("utf-8", "backslashreplace"))
        self._pending_record_count += records

    def _write_chunk(self, metadata: Any, body: str) -> None:
        if not self._body.tell():
            super()._write_chunk(metadata, body)
            return
        pairs = {n: v for n, v in metadata if v is not None} if metadata else {}
        meta = "".join(self._iterencode_json(pairs, 0)).encode("utf-8") if pairs else b""
        with self._body.getbuffer() as view:
            self.write(f"chunked 1.0,{len(meta)},{len(view)}\n")
            self.write(meta)
            self._ofile.write(view)
        self._ofile.flush()
        self._flushed = True

    def _clear(self) -> None:
        super()._clear()
        self._body = io.BytesIO()
