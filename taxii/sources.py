"""VirusTotal IOC sources republished as STIX: a VT collection, Livehunt notifications, the IoC
Stream, an Intelligence search. Each is polled inside `vtconnect serve` (one API call per page
through the core's gateway) and its objects become Indicators in a local collection.

An object's Indicator version is dated by VirusTotal's last analysis, so polling the same data
again stores nothing new; a fresh analysis publishes a new version.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from connectors.core import stix
from connectors.core.enricher import from_report
from connectors.core.gateway import BudgetSpent, Gateway, RateLimited, Slot
from connectors.core.observable import InvalidObservable, parse
from connectors.core.report import ReportError, parse_report
from connectors.core.verdict import Enrichment, Verdict

PATHS = {
    "collection": "/collections/{id}/{kind}",  # kind: files, urls, domains, ip_addresses
    "livehunt": "/intelligence/hunting_notification_files",
    "ioc_stream": "/ioc_stream",
    "search": "/intelligence/search",
}


def requests_for(source: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    kind = source["type"]
    if kind == "collection":
        return [
            (PATHS[kind].format(id=source["id"], kind=k), {})
            for k in ("files", "urls", "domains", "ip_addresses")
        ]
    if kind == "search":
        return [(PATHS[kind], {"query": source["query"]})]
    return [(PATHS[kind], {})]


def enrichment_of(item: Dict[str, Any], policy_settings: Any) -> Optional[Enrichment]:
    """A VirusTotal object (full, not a descriptor) as an Enrichment with our verdict."""
    try:
        report = parse_report({"data": item})
    except ReportError:
        return None
    raw = report.url if report.kind == "url" else report.sha256 or report.id
    try:
        obs = parse(raw)
    except InvalidObservable:
        return None
    return from_report(obs, report, policy_settings)


def _listed(lists: Any, enr: Enrichment) -> Optional[Enrichment]:
    rule = lists.match_value(enr.kind, enr.value, enr.report)
    if rule is None:
        return enr
    if rule.verdict is Verdict.SKIPPED:
        return None
    return replace(enr, verdict=rule.verdict, score=rule.score, reason=rule.reason)


async def poll(
    gateway: Gateway,
    slot: Callable[[], Slot],
    source: Dict[str, Any],
    policy_settings: Any,
    tlp: str,
    lists: Any = None,
    max_pages: int = 20,
) -> List[Dict[str, Any]]:
    """STIX objects for the risky objects a source lists now (at most max_pages pages). Every
    page is one API call for which the gateway asks the quota governor first (`slot` says who
    asks and until when): no budget, no call.
    `lists` (core.lists.Lists): ignored values are left out, forced verdicts replace ours."""
    wanted = {Verdict(v) for v in source.get("verdicts", ["malicious", "suspicious"])}
    out: List[Dict[str, Any]] = []
    for path, params in requests_for(source):
        cursor = None
        for _ in range(max_pages):
            query = dict(params, limit=40, **({"cursor": cursor} if cursor else {}))
            try:
                doc = await gateway.get_json(path, query, slot())
            except (BudgetSpent, RateLimited):
                return out
            items = doc.get("data") if isinstance(doc, dict) else None
            for item in items if isinstance(items, list) else []:
                enr = enrichment_of(item, policy_settings) if isinstance(item, dict) else None
                if enr is not None and lists:
                    enr = _listed(lists, enr)
                if enr is None or enr.verdict not in wanted:
                    continue
                when = enr.report.last_analysis if enr.report and enr.report.last_analysis else 0
                objs = stix.objects_for([enr], float(when) or 1.0, tlp, wanted)
                out += [o for o in objs if o["type"] not in ("identity", "marking-definition")]
            meta = doc.get("meta") if isinstance(doc, dict) else None
            cursor = meta.get("cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
    return out
