"""Prometheus metrics of the receiver (prometheus-client, one registry per app): requests by
source and status, enrichment latency, jobs and callbacks by state, cache hits and quota left."""

from __future__ import annotations

from typing import Mapping, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4"
JOB_STATES = ("queued", "running", "done", "failed")
DELIVERY_STATES = ("pending", "delivered", "dead")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "vtconnect_webhook_requests", "Alert requests", ["source", "status"], registry=r
        )
        self.latency = Histogram(
            "vtconnect_webhook_enrichment_seconds", "Time to enrich one alert", registry=r
        )
        self.jobs = Gauge("vtconnect_webhook_jobs", "Jobs by state", ["state"], registry=r)
        self.deliveries = Gauge(
            "vtconnect_webhook_callbacks", "Callbacks by delivery state", ["state"], registry=r
        )
        self.cache_hits = Gauge(
            "vtconnect_cache_hits_today", "Cache hits today (host-wide)", registry=r
        )
        self.cache_misses = Gauge(
            "vtconnect_cache_misses_today", "Cache misses today (host-wide)", registry=r
        )
        self.quota_left = Gauge(
            "vtconnect_quota_left_today",
            "API calls left today for the key (-1: no local limit)",
            registry=r,
        )

    def render(
        self,
        jobs: Mapping[str, int],
        deliveries: Mapping[str, int],
        cache: Mapping[str, int],
        left_today: Optional[int],
    ) -> bytes:
        """The text exposition, with the gauges read now (a state with no rows is 0, not the
        last value it had)."""
        for state in dict.fromkeys([*JOB_STATES, *jobs]):
            self.jobs.labels(state).set(jobs.get(state, 0))
        for state in dict.fromkeys([*DELIVERY_STATES, *deliveries]):
            self.deliveries.labels(state).set(deliveries.get(state, 0))
        self.cache_hits.set(cache.get("hits_today", 0))
        self.cache_misses.set(cache.get("misses_today", 0))
        self.quota_left.set(-1 if left_today is None else left_today)
        return generate_latest(self.registry)
