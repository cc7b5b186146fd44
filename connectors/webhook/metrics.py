"""Prometheus metrics of the receiver (one registry per app, declared with the servers' shared
part_metrics): requests by source and status, enrichment latency, jobs and callbacks by state,
and the core's cache hits and quota left."""

from __future__ import annotations

from typing import Mapping

from prometheus_client import Gauge, Histogram

from connectors.core.enricher import Enricher
from connectors.part_metrics import PartMetrics

JOB_STATES = ("queued", "running", "done", "failed")
DELIVERY_STATES = ("pending", "delivered", "dead")


class Metrics(PartMetrics):
    def __init__(self) -> None:
        super().__init__("webhook", "Alert requests", ["source", "status"])
        self.latency = self.declare(Histogram, "enrichment_seconds", "Time to enrich one alert")
        self.jobs = self.declare(Gauge, "jobs", "Jobs by state", ["state"])
        self.deliveries = self.declare(Gauge, "callbacks", "Callbacks by delivery state", ["state"])

    def render(
        self, jobs: Mapping[str, int], deliveries: Mapping[str, int], enricher: Enricher
    ) -> bytes:
        """The text exposition, with the gauges read now (a state with no rows is 0, not the
        last value it had)."""
        for state in dict.fromkeys([*JOB_STATES, *jobs]):
            self.jobs.labels(state).set(jobs.get(state, 0))
        for state in dict.fromkeys([*DELIVERY_STATES, *deliveries]):
            self.deliveries.labels(state).set(deliveries.get(state, 0))
        return self.exposition(enricher)
