"""Operational figures where analysts can read them: each search's summary and the risky
indicators it met go to KV store collections (vtconnect_stats, vtconnect_risky) that the
app's role reads, instead of only to vtlookup.log in index=_internal, which analysts usually
cannot search. The overview dashboard reads them through the lookups of the same names."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

from vtlookup_support import fields

STATS = "vtconnect_stats"
RISKY = "vtconnect_risky"
RISKY_VERDICTS = ("malicious", "suspicious")
COUNTED = (
    "records", "unique", "cache_hits", "api_calls", "malicious", "suspicious", "harmless",
    "undetected", "not_found", "skipped", "quota", "error",
)  # fmt: skip
_AT = {name: i for i, name in enumerate(fields.NAMES)}
log = logging.getLogger("vtconnect.vtlookup")


def stats_doc(
    sid: str, user: str, now: float, seconds: float, counts: Dict[str, int], cache: str,
    limits: Tuple[int, int],
) -> Dict[str, Any]:  # fmt: skip
    doc: Dict[str, Any] = {"_key": _key(sid), "time": now, "sid": sid, "user": user}
    doc.update({k: int(counts.get(k, 0)) for k in COUNTED})
    doc.update(seconds=round(seconds, 3), cache=cache, per_minute=limits[0], per_day=limits[1])
    return doc


def risky_doc(
    sid: str, user: str, now: float, field: str, kind: str, value: str, verdict: str,
    score: int, link: str,
) -> Dict[str, Any]:  # fmt: skip
    return {
        "_key": _key(f"{sid}\0{kind}\0{value}"), "time": now, "sid": sid, "user": user,
        "field": field, "kind": kind, "value": value, "verdict": verdict, "score": score,
        "link": link,
    }  # fmt: skip


def from_columns(columns: str) -> Optional[Dict[str, str]]:
    """kind, value (normalised id), score and link from a kept answer's encoded columns."""
    cells = next(csv.reader([columns]), [])
    get = {n: cells[2 * i] if 2 * i < len(cells) else "" for n, i in _AT.items()}
    if get["verdict"] not in RISKY_VERDICTS:
        return None
    return {"kind": get["kind"], "score": get["score"] or "0", "link": get["link"]}


def save(service: Any, app: str, stats: Dict[str, Any], risky: List[Dict[str, Any]]) -> None:
    """Best effort: a KV store that does not answer costs the dashboards one search, never the
    search itself."""
    try:
        for collection, docs in ((STATS, [stats]), (RISKY, risky)):
            for i in range(0, len(docs), 1000):
                service.post(
                    f"storage/collections/data/{collection}/batch_save",
                    owner="nobody",
                    app=app,
                    headers=[("Content-Type", "application/json")],
                    body=json.dumps(docs[i : i + 1000]),
                )
    except Exception as exc:
        log.warning("event=opstats_failed error=%r", exc)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
