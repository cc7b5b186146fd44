"""Renders enrichments for people (a table) and for programs (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Dict, List, Sequence, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .core import evidence, stix
from .core.verdict import Enrichment

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


def rows(results: Sequence[Enrichment]) -> List[Dict[str, Any]]:
    out = []
    for r in results:
        d = r.to_dict()
        d["source"] = (
            "emulator"
            if r.report is not None and r.report.emulated
            else ("virustotal" if r.report is not None else "")
        )
        out.append(d)
    return out


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
    emulated = any(r.report is not None and r.report.emulated for r in results)
    title = "VirusTotal verdicts" + (" — EMULATOR DATA, not VirusTotal" if emulated else "")
    t = Table(title=title, title_style="bold magenta" if emulated else "bold")
    for col in ("value", "kind", "verdict", "score", "detections", "reason", "evidence"):
        t.add_column(col, overflow="fold")
    for r in results:
        rep = r.report
        det = f"{rep.stats.get('malicious', 0)}/{rep.total}" if rep else ""
        mark = " (cached)" if r.cached else ""
        # Text objects, not markup strings: values like "evil[.]com" must print as they are.
        t.add_row(
            Text(_short(r.value)),
            Text(r.kind or "?"),
            Text(r.verdict.value + mark, style=COLOURS.get(r.verdict.value, "")),
            Text(str(r.score)),
            Text(det),
            Text(r.reason),
            Text(_evidence(r)),
        )
    console.print(t)


def _evidence(r: Enrichment, engines: int = 3) -> str:
    """The threat label and the first (most trusted) detections, for people."""
    if r.report is None:
        return ""
    ev = evidence.evidence(r.report)
    parts = [r.report.threat_label] if r.report.threat_label else []
    parts += ev["detections"][:engines]
    if len(ev["detections"]) > engines:
        parts.append(f"+{len(ev['detections']) - engines} more")
    return "; ".join(parts)


def _short(value: str, limit: int = 80) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= limit else value[: limit - 1] + "…"


class RowWriter:
    """Writes results as they complete: csv and jsonl a line per value, json one array that is a
    valid document however early it is closed (Ctrl-C); table and stix once, at close."""

    def __init__(self, fmt: str, out: TextIO, console: Console) -> None:
        self.fmt, self.out, self.console = fmt, out, console
        self.kept: List[Enrichment] = []
        self.count = 0
        self._csv: Any = None

    def write(self, results: Sequence[Enrichment]) -> None:
        self.count += len(results)
        if self.fmt in ("table", "stix"):
            self.kept += results
            return
        for d in rows(results):
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
            print_table(self.kept, self.console)
        elif self.fmt == "csv" and self._csv is None:
            self.out.write(to_csv([]))
        self.out.flush()
