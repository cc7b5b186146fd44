"""schemathesis drives both HTTP APIs from their shipped OpenAPI documents: valid and invalid
requests for every operation, the TAXII part also as TAXII 2.0 (a 2.0 Accept on every request,
Range on objects and manifest). Every answer must be documented (status, media type, schema),
never a 5xx, an error in the part's JSON shape, no traceback logged, /healthz still fast."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from . import campaign
from .conftest import EXAMPLES, seed_inbox

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def schema(package: str):
    doc = json.loads(resources.files(package).joinpath("openapi.json").read_text())
    return schemathesis.openapi.from_dict(doc)


WEBHOOK, TAXII = schema("connectors.webhook"), schema("taxii")
TAXII20 = "application/vnd.oasis.taxii+json; version=2.0"
STIX20 = "application/vnd.oasis.stix+json; version=2.0"
ACCEPT20 = f"{TAXII20}, {STIX20}"  # what a TAXII 2.0 client admits (taxii2-client v20 sends one)
FIXED = {
    "webhook": {"headers": {"Authorization": f"Bearer {campaign.TOKEN}"}},
    "taxii": {
        "headers": {"Authorization": campaign.basic()},
        "path_parameters": {"root": "api", "collection": campaign.INBOX},
    },
    "taxii20": {
        "headers": {"Authorization": campaign.basic(), "Accept": ACCEPT20},
        "path_parameters": {"root": "api", "collection": campaign.INBOX},
    },
}


def header(response, name: str) -> str:
    """A response header (schemathesis keeps lists under lower-case names)."""
    value = response.headers.get(name) or response.headers.get(name.title())
    return (value[0] if isinstance(value, list) else value) or ""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(
    "part, api, fixed",
    [("webhook", WEBHOOK, "webhook"), ("taxii", TAXII, "taxii"), ("taxii", TAXII, "taxii20")],
    ids=["webhook", "taxii", "taxii20"],
)
def test_api_answers_as_documented(target, part, api, fixed, mode):
    if fixed == "taxii20":
        seed_inbox(target)
    strategy = api.as_strategy(mode, **FIXED[fixed])

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    @given(case=strategy)
    def campaign(case):
        response = case.call(base_url=target.served.urls[part], timeout=30)
        what = f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}"
        target.check(part, response.status_code, header(response, "content-type"),
                     response.content, what)  # fmt: skip
        if mode == GenerationMode.POSITIVE:
            case.validate_response(response, checks=CHECKS)

    campaign()


@pytest.mark.parametrize(
    "path, accept",
    [("/{root}/collections/{collection}/objects/", STIX20),
     ("/{root}/collections/{collection}/manifest/", TAXII20)],
    ids=["objects", "manifest"],
)  # fmt: skip
def test_taxii20_paging_answers_as_documented(target, path, accept):
    """The 2.0 paging answers the campaign may not draw: the whole collection (200), a window
    (206 + Content-Range), a wide window capped at the end, past the end (416), a backwards
    Range (400); each validated against the document."""
    seed_inbox(target)
    operation = TAXII[path]["GET"]
    expected = [(None, 200, None), ("items 0-4", 206, "items 0-4/"),
                ("items=5-9", 206, "items 5-9/"), ("items 10-99999", 206, "items 10-"),
                ("items 99999-99999", 416, None), ("items 5-2", 400, None)]  # fmt: skip
    for asked, status, content_range in expected:
        headers = {"Authorization": campaign.basic(), "Accept": accept}
        if asked:
            headers["Range"] = asked
        case = operation.Case(path_parameters={"root": "api", "collection": campaign.INBOX},
                              headers=headers)  # fmt: skip
        response = case.call(base_url=target.served.urls["taxii"], timeout=30)
        assert response.status_code == status, (asked, response.status_code, response.text)
        if content_range:
            assert header(response, "content-range").startswith(content_range), asked
        target.check("taxii", status, header(response, "content-type"), response.content,
                     f"GET {path} Range={asked}")  # fmt: skip
        case.validate_response(response, checks=CHECKS)
