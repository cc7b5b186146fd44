"""The shipped OpenAPI documents are valid OpenAPI 3.1, served at /openapi.json, and name every
route each app has (a new route without a description fails here, not in a consumer)."""

from __future__ import annotations

import json
import urllib.request
from importlib import resources

import pytest
import schemathesis

from . import campaign


def document(package: str) -> dict:
    return json.loads(resources.files(package).joinpath("openapi.json").read_text())


def routes(app) -> set:
    return {r.canonical.rstrip("/") or "/" for r in app.router.resources()}


def documented(doc: dict) -> set:
    return {p.rstrip("/") or "/" for p in doc["paths"]}


@pytest.mark.parametrize("package", ["connectors.webhook", "taxii"])
def test_documents_load_as_openapi_31(package):
    doc = document(package)
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [op.ok() for op in schema.get_all_operations()]  # each one parses
    assert len(operations) >= 6


async def test_every_route_is_documented(settings):
    from connectors.core.enricher import Enricher
    from connectors.serve import _factory
    from taxii.server import build_app as taxii_app

    webhook_app = _factory("webhook")  # the receiver and the hub, as `serve` runs them

    enricher = Enricher(settings, connector="test")
    try:
        assert routes(webhook_app(settings, enricher)) <= documented(document("connectors.webhook"))
    finally:
        await enricher.aclose()
        enricher.close()
    assert routes(taxii_app(settings, None)) <= documented(document("taxii"))


def test_served_at_openapi_json(tmp_path, emulator_url):
    srv = campaign.start(tmp_path, emulator_url)
    try:
        for part, package in (("webhook", "connectors.webhook"), ("taxii", "taxii")):
            req = urllib.request.Request(srv.urls[part] + "/openapi.json",
                                         headers={"Accept": "application/json"})  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.headers["Content-Type"].startswith("application/json")
                assert json.loads(r.read()) == document(package)
    finally:
        srv.stop()
