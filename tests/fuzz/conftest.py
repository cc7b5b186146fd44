"""One `vtconnect serve --webhook --taxii` process for the fuzz campaigns, and the checks every
response must pass. FUZZ_EXAMPLES sets the campaign length (`make fuzz` runs a long one)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict

from ..processes import Served
from . import campaign

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
SEEDED = 12  # objects in the inbox for the TAXII 2.0 campaigns, so that Range windows have items
ERROR_KEYS = {"webhook": {"error", "message"}, "taxii": {"title", "description", "http_status"}}


class Target:
    """The fuzz target and what must hold after every response."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.seen = 0  # log bytes already checked

    def check(self, part: str, status: int, content_type: str, body: bytes, what: str) -> None:
        assert status < 500, f"{what}: {status} {body[:300]!r}"
        if status >= 400 and part in ERROR_KEYS:
            assert "json" in content_type, f"{what}: {status} as {content_type!r}"
            doc = json.loads(body)
            assert isinstance(doc, dict) and set(doc) == ERROR_KEYS[part], f"{what}: {doc}"
        self.check_log(what)
        self.check_alive(part, what)

    def check_alive(self, part: str, what: str) -> None:
        """/healthz within 100 ms: the liveness bound. Best of three tries, so that a moment
        of scheduling noise on a shared machine is not taken for a stuck server."""
        took = []
        for _ in range(3):
            took.append(campaign.healthz_ms(self.served, part))
            if took[-1] < 100:
                return
        raise AssertionError(f"{what}: /healthz took {took} ms")

    def check_log(self, what: str) -> None:
        log = self.served.log()
        new, self.seen = log[self.seen :], len(log)
        assert "Traceback" not in new and " ERROR " not in new, f"{what}:\n{new[-4000:]}"


@pytest.fixture(scope="package")
def target(tmp_path_factory, emulator_url):
    tmp = tmp_path_factory.mktemp("fuzz")
    # Allow the campaign's volume; the rate limit has its own tests.
    srv = campaign.start(tmp, emulator_url)
    yield Target(srv)
    srv.stop()
    log = srv.log()
    assert "Traceback" not in log, log[-4000:]


def seed_inbox(target) -> None:
    """SEEDED indicators in the inbox (through TAXII 2.1, the way writes go), once per campaign
    process."""
    if getattr(target, "seeded", False):
        return
    now = time.time() - 3600
    objs = [stix.indicator(Enrichment(value=f"fuzz{i}.example.com", kind="domain",
                                      verdict=Verdict.MALICIOUS, score=90, reason="fuzz",
                                      normalized=f"fuzz{i}.example.com",
                                      vt_id=f"fuzz{i}.example.com",
                                      link="https://www.virustotal.com/gui/x"), now + i)
            for i in range(SEEDED)]  # fmt: skip
    media = "application/taxii+json;version=2.1"
    req = urllib.request.Request(
        f"{target.served.urls['taxii']}/api/collections/{campaign.INBOX}/objects/",
        data=json.dumps({"objects": objs}).encode(), method="POST",
        headers={"Authorization": campaign.basic(), "Accept": media, "Content-Type": media},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
    target.seeded = True
