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


def test_taxii20_is_documented_beside_21():
    """Every TAXII answer documented in 2.1's media type is documented in 2.0's too (errors on
    every route, bodies where 2.0 answers; writes are read-only 406s in 2.0), and the 2.0 paging
    (Range in, 206 + Content-Range, 416) on objects and manifest."""
    doc = document("taxii")
    t21, t20 = "application/taxii+json;version=2.1", "application/vnd.oasis.taxii+json; version=2.0"
    s20 = "application/vnd.oasis.stix+json; version=2.0"
    obj = "/{root}/collections/{collection}/objects/"
    read_only = {("post", obj), ("delete", obj + "{object}/"), ("get", obj + "{object}/versions/")}
    taxii_ops = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            answers = op["responses"]
            if path.startswith("/feeds/"):  # flat feeds do not read Accept: no 2.0 there
                assert not any(t20 in (r.get("content") or {}) for r in answers.values()), path
                continue
            if not any(t21 in (r.get("content") or {}) for r in answers.values()):
                continue  # /healthz, /metrics, /openapi.json
            taxii_ops += 1
            for code, r in answers.items():
                content = r.get("content") or {}
                if code.startswith("4"):
                    assert t20 in content, (method, path, code)
                elif code.startswith("2") and (method, path) not in read_only:
                    assert {t20, s20} & set(content), (method, path, code)
            if (method, path) in read_only:
                assert "2.0" in answers["406"]["description"], (method, path)
    assert taxii_ops == 11
    objects = doc["paths"]["/{root}/collections/{collection}/objects/"]["get"]
    for op, media, schema in (
        (objects, s20, "Bundle20"),
        (doc["paths"]["/{root}/collections/{collection}/manifest/"]["get"], t20, "Manifest20"),
    ):
        assert any(p["name"] == "Range" and p["in"] == "header" for p in op["parameters"])
        partial = op["responses"]["206"]
        assert partial["content"][media]["schema"]["$ref"].endswith("/" + schema)
        assert (
            "Content-Range" in partial["headers"]
            and "Content-Range" in op["responses"]["200"]["headers"]
        )
        assert t20 in op["responses"]["416"]["content"]
    assert objects["responses"]["200"]["content"][s20]["schema"]["$ref"].endswith("/Bundle20")
