"""schemathesis drives both HTTP APIs from their shipped OpenAPI documents: valid and invalid
requests for every operation. Every answer must be documented (status, media type, schema),
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
from .conftest import EXAMPLES

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def schema(package: str):
    doc = json.loads(resources.files(package).joinpath("openapi.json").read_text())
    return schemathesis.openapi.from_dict(doc)


WEBHOOK, TAXII = schema("connectors.webhook"), schema("taxii")
FIXED = {
    "webhook": {"headers": {"Authorization": f"Bearer {campaign.TOKEN}"}},
    "taxii": {
        "headers": {"Authorization": campaign.basic()},
        "path_parameters": {"root": "api", "collection": campaign.INBOX},
    },
}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("part, api", [("webhook", WEBHOOK), ("taxii", TAXII)])
def test_api_answers_as_documented(target, part, api, mode):
    strategy = api.as_strategy(mode, **FIXED[part])

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    @given(case=strategy)
    def campaign(case):
        response = case.call(base_url=target.served.urls[part], timeout=30)
        what = f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}"
        ctype = response.headers.get("content-type") or response.headers.get("Content-Type")
        ctype = ctype[0] if isinstance(ctype, list) else ctype or ""
        target.check(part, response.status_code, ctype, response.content, what)
        if mode == GenerationMode.POSITIVE:
            case.validate_response(response, checks=CHECKS)

    campaign()
