"""Renders enrichments for people (a table) and for programs (JSON, CSV, STIX) on the command
line. (Alert formats are connectors/webhook/formats.py; the JSON object itself is
connectors/core/records.py.)"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Dict, List, Sequence, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core import evidence, stix
from ..core.records import rows
from ..core.verdict import Enrichment

CSV_FIELDS = (
    "value",
    "kind",
    "normalized",
    "vt_id",
    "verdict",
    "score",
    "reason",
    "malicious",
    "suspicious",
    "harmless",
    "undetected",
    "total",
    "reputation",
    "threat_label",
    "tags",
    "first_seen",
    "last_analysis",
    "link",
    "cached",
    "stale",
    "error",
    "source",
    *evidence.FIELDS,
)
LIST_SEPARATOR = ";"  # list fields in CSV cells
COLOURS = {
    "malicious": "bold red",
    "suspicious": "yellow",
    "harmless": "green",
    "undetected": "cyan",
    "not_found": "dim",
    "skipped": "dim",
    "quota": "magenta",
    "error": "bold magenta",
}


def to_json(results: Sequence[Enrichment]) -> str:
    return json.dumps(rows(results), indent=2, ensure_ascii=False)


def to_stix(results: Sequence[Enrichment]) -> str:
    """A STIX 2.1 bundle of Indicators for the malicious and suspicious results."""
    return json.dumps(stix.bundle(stix.objects_for(results, time.time())), indent=2)


def to_csv(results: Sequence[Enrichment]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for d in rows(results):
        w.writerow(_csv_row(d))
    return buf.getvalue()


def _csv_row(d: Dict[str, Any]) -> Dict[str, Any]:
    """One CSV row: list fields joined with LIST_SEPARATOR, None as an empty cell."""
    for k in ("tags", *evidence.LIST_FIELDS):
        d[k] = LIST_SEPARATOR.join(d[k])
    return {k: "" if d.get(k) is None else d.get(k) for k in CSV_FIELDS}


def print_table(results: Sequence[Enrichment], console: Console) -> None:
    print_rows(rows(results), console)


def print_rows(found: Sequence[Dict[str, Any]], console: Console) -> None:
    """The table, from the rows `rows` makes (a hub's answer is such rows too)."""
    emulated = any(d.get("source") == "emulator" for d in found)
    title = "VirusTotal verdicts" + (" — EMULATOR DATA, not VirusTotal" if emulated else "")
    t = Table(title=title, title_style="bold magenta" if emulated else "bold")
    for col in ("value", "kind", "verdict", "score", "detections", "reason", "evidence"):
        t.add_column(col, overflow="fold")
    for d in found:
        det = f"{d.get('malicious') or 0}/{d.get('total')}" if d.get("total") is not None else ""
        mark = " (cached)" if d.get("cached") else ""
        verdict = str(d.get("verdict", ""))
        # Text objects, not markup strings: values like "evil[.]com" must print as they are.
        t.add_row(
            Text(_short(str(d.get("value", "")))),
            Text(str(d.get("kind") or "?")),
            Text(verdict + mark, style=COLOURS.get(verdict, "")),
            Text(str(d.get("score", ""))),
            Text(det),
            Text(str(d.get("reason", ""))),
            Text(_evidence(d)),
        )
    console.print(t)


def _evidence(d: Dict[str, Any], engines: int = 3) -> str:
    """The threat label and the first (most trusted) detections, for people."""
    if d.get("total") is None:
        return ""
    found = list(d.get("detections") or [])
    parts = [d["threat_label"]] if d.get("threat_label") else []
    parts += found[:engines]
    if len(found) > engines:
        parts.append(f"+{len(found) - engines} more")
    return "; ".join(str(p) for p in parts)


def _short(value: str, limit: int = 80) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= limit else value[: limit - 1] + "…"


class RowWriter:
    """Writes results as they complete: csv and jsonl a line per value, json one array that is a
    valid document however early it is closed (Ctrl-C); table and stix once, at close."""

    def __init__(self, fmt: str, out: TextIO, console: Console) -> None:
        self.fmt, self.out, self.console = fmt, out, console
        self.kept: List[Enrichment] = []
        self.kept_rows: List[Dict[str, Any]] = []  # a hub's rows, for the table
        self.count = 0
        self._csv: Any = None

    def write(self, results: Sequence[Enrichment]) -> None:
        if self.fmt in ("table", "stix"):
            self.count += len(results)
            self.kept += results
            return
        self.write_rows(rows(results))

    def write_rows(self, found: Sequence[Dict[str, Any]]) -> None:
        """Rows as `rows` makes them (a hub's answer); not for stix, which needs reports."""
        self.count += len(found)
        if self.fmt == "table":
            self.kept_rows += found
            return
        for d in found:
            if self.fmt == "csv":
                if self._csv is None:
                    self._csv = csv.DictWriter(
                        self.out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n"
                    )
                    self._csv.writeheader()
                self._csv.writerow(_csv_row(d))
            elif self.fmt == "jsonl":
                self.out.write(json.dumps(d, ensure_ascii=False) + "\n")
            else:
                lead = "[\n" if self._csv is None else ",\n"
                self._csv = True  # the array is open
                self.out.write(lead + json.dumps(d, indent=2, ensure_ascii=False))
        self.out.flush()

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self._csv else "[]\n")
        elif self.fmt == "stix":
            self.out.write(to_stix(self.kept) + "\n")
        elif self.fmt == "table":
            print_rows(rows(self.kept) + self.kept_rows, self.console)
        elif self.fmt == "csv" and self._csv is None:
            self.out.write(to_csv([]))
        self.out.flush()
