"""VirusTotal's IoC Stream and Livehunt notifications (premium) as Splunk events, for the
modular input bin/vtconnect_feeds.py.

Both feeds list newest first. Each run pages from the newest notification back to where the
last run stopped (the checkpoint: the newest notification date seen and the notification ids
at that date, kept in the KV collection vtconnect_checkpoints), so nothing is indexed twice and
a run cut short by its page budget or the quota resumes from the same checkpoint. Every page is
one API call through the host's quota governor at background priority: searches go first.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from connectors.core.enricher import from_report
from connectors.core.observable import InvalidObservable, parse
from connectors.core.report import ReportError, parse_report

FEEDS = {
    "ioc_stream": ("/ioc_stream", "vtconnect:ioc_stream"),
    "livehunt": ("/intelligence/hunting_notification_files", "vtconnect:livehunt"),
}
CHECKPOINTS = "vtconnect_checkpoints"
PAGE = 40  # items per API call
KEPT_ATTRIBUTES = (
    "last_analysis_stats", "reputation", "tags", "popular_threat_classification",
    "meaningful_name", "type_description", "size", "md5", "sha1", "sha256", "url",
    "last_analysis_date", "first_submission_date", "country", "as_owner", "categories",
)  # fmt: skip


class Checkpoint:
    def __init__(self, date: float = 0.0, ids: Optional[List[str]] = None) -> None:
        self.date = date
        self.ids = set(ids or [])

    def is_new(self, date: float, nid: str) -> bool:
        return date > self.date or (date == self.date and nid not in self.ids)

    def advance(self, date: float, nid: str) -> None:
        if date > self.date:
            self.date, self.ids = date, {nid}
        elif date == self.date:
            self.ids.add(nid)

    def doc(self, key: str) -> Dict[str, Any]:
        return {"_key": key, "date": self.date, "ids": sorted(self.ids)}


def load_checkpoint(service: Any, app: str, key: str) -> Checkpoint:
    from splunklib.binding import HTTPError

    try:
        resp = service.get(f"storage/collections/data/{CHECKPOINTS}/{key}", owner="nobody", app=app)
    except HTTPError as exc:
        if exc.status == 404:
            return Checkpoint()
        raise
    doc = json.loads(resp.body.read())
    return Checkpoint(float(doc.get("date") or 0), [str(i) for i in doc.get("ids") or []])


def save_checkpoint(service: Any, app: str, key: str, cp: Checkpoint) -> None:
    service.post(
        f"storage/collections/data/{CHECKPOINTS}/batch_save",
        owner="nobody",
        app=app,
        headers=[("Content-Type", "application/json")],
        body=json.dumps([cp.doc(key)]),
    )


async def poll(
    gateway: Any, governor: Any, feed: str, cp: Checkpoint, max_pages: int, flt: str = ""
) -> Tuple[List[Dict[str, Any]], str]:
    """(new items newest first, why the run stopped: done|pages|quota)."""
    from connectors.core.quota import Priority

    path = FEEDS[feed][0]
    items: List[Dict[str, Any]] = []
    cursor = ""
    for _ in range(max_pages):
        if not await governor.acquire(Priority.BACKGROUND, deadline=30.0):
            return items, "quota"
        query: Dict[str, Any] = {"limit": PAGE}
        if cursor:
            query["cursor"] = cursor
        if flt:
            query["filter"] = flt
        doc = await gateway.get_json(path, query)
        data = doc.get("data") if isinstance(doc, dict) else None
        for item in data if isinstance(data, list) else []:
            ctx = item.get("context_attributes") if isinstance(item, dict) else None
            if not isinstance(ctx, dict):
                continue
            date, nid = _when(ctx), str(ctx.get("notification_id") or item.get("id") or "")
            if not cp.is_new(date, nid):
                return items, "done"  # everything older was indexed by an earlier run
            items.append(item)
        meta = doc.get("meta") if isinstance(doc, dict) else None
        cursor = str(meta.get("cursor") or "") if isinstance(meta, dict) else ""
        if not cursor:
            return items, "done"
    return items, "pages"


def _when(ctx: Dict[str, Any]) -> float:
    try:
        return float(ctx.get("notification_date") or 0)
    except (TypeError, ValueError):
        return 0.0


def event(feed: str, item: Dict[str, Any], policy: Any) -> Dict[str, Any]:
    """One indexed event: the notification, the object's key attributes and our verdict."""
    ctx = item.get("context_attributes") or {}
    attrs = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
    out: Dict[str, Any] = {
        "feed": feed,
        "type": item.get("type", ""),
        "id": item.get("id", "") or item.get("url", ""),
        "notification": ctx,
        "attributes": {k: attrs[k] for k in KEPT_ATTRIBUTES if k in attrs},
    }
    verdict = _verdict(item, policy) if attrs else None
    if verdict is not None:
        out.update(
            vt_kind=verdict.kind,
            vt_verdict=verdict.verdict.value,
            vt_score=verdict.score,
            vt_reason=verdict.reason,
            vt_link=verdict.link,
            indicator=verdict.normalized,
        )
    return out


def _verdict(item: Dict[str, Any], policy: Any) -> Any:
    try:
        report = parse_report({"data": item})
        obs = parse(report.url if report.kind == "url" else report.sha256 or report.id)
    except (ReportError, InvalidObservable):
        return None
    return from_report(obs, report, policy)


def event_time(item: Dict[str, Any]) -> float:
    return _when(item.get("context_attributes") or {})
