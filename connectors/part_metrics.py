"""Prometheus metrics of one server part (prometheus-client, one registry a part): the part's
own metrics, named `vtconnect_<part>_<name>`, beside the gauges every part shows of the shared
enrichment core (API calls left today for the key, today's cache hits and misses), read from
the enricher at each scrape, and the text exposition.

The webhook receiver declares its metrics with it, and so does the front door (observe.py) for
the parts that have no /metrics of their own. Shared plumbing for the servers, like
request_bodies.py: it imports no part."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Type, TypeVar, Union

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from .core.enricher import Enricher

CONTENT_TYPE = "text/plain; version=0.0.4"
M = TypeVar("M", bound=Union[Counter, Gauge, Histogram])


class PartMetrics:
    """`requests` counts the part's requests by `request_labels`; `declare` adds the rest."""

    def __init__(self, part: str, requests_help: str, request_labels: Sequence[str]) -> None:
        self.part = part
        self.registry = CollectorRegistry()
        self.requests = self.declare(Counter, "requests", requests_help, request_labels)
        self.quota_left = self._core_gauge(
            "quota_left_today", "API calls left today for the key (-1: no local limit)"
        )
        self.cache_hits = self._core_gauge("cache_hits_today", "Cache hits today (host-wide)")
        self.cache_misses = self._core_gauge("cache_misses_today", "Cache misses today (host-wide)")

    def declare(self, kind: Type[M], name: str, doc: str, labels: Sequence[str] = ()) -> M:
        """A Counter, Gauge or Histogram of this part: `vtconnect_<part>_<name>`."""
        return kind(f"vtconnect_{self.part}_{name}", doc, list(labels), registry=self.registry)

    def _core_gauge(self, name: str, doc: str) -> Gauge:
        return Gauge(f"vtconnect_{name}", doc, registry=self.registry)

    def exposition(self, enricher: Enricher) -> bytes:
        """The text exposition, with the core's gauges read now."""
        left = enricher.governor.status().get("left_today")  # none: unlimited or no daily cap
        self.quota_left.set(-1 if left is None else left)
        stats = enricher.cache.stats()
        self.cache_hits.set(stats.get("hits_today", 0))
        self.cache_misses.set(stats.get("misses_today", 0))
        return generate_latest(self.registry)
