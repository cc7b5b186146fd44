"""One fixture per product, written from each product's documented field names: the format is
recognised, the indicators are found (structured fields and free text), the product's own id
becomes the idempotency key; and each goes through the receiver to a verdict."""

from __future__ import annotations

import pytest

from connectors.webhook import formats

from .test_receiver import BEARER, EICAR, ELASTIC, SENTINEL, SPLUNK, WAZUH, post

SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
FIXTURES = {
    "qradar": ({"id": 4242, "description": "Malware beacon to malware.wicar.org",
                "offense_type": 0, "offense_source": "203.0.113.66", "magnitude": 7,
                "categories": ["Malware"]},
               {"203.0.113.66", "malware.wicar.org"}, "qradar:4242"),
    "chronicle": ({"id": "de_7a1f", "type": "RULE_DETECTION",
                   "detection": [{"ruleName": "c2_beacon", "ruleId": "ru_1"}],
                   "collectionElements": [{"references": [{"event": {
                       "principal": {"ip": ["10.0.0.8"], "hostname": "ws-12"},
                       "target": {"ip": ["203.0.113.66"], "url": "http://malware.wicar.org/x"},
                       "network": {"dns": {"questions": [{"name": "malware.wicar.org"}]}}}}]}]},
                  {"203.0.113.66", "http://malware.wicar.org/x"}, "chronicle:de_7a1f"),
    "crowdstrike": ({"metadata": {"eventType": "DetectionSummaryEvent", "offset": 88},
                     "event": {"DetectId": "ldt:abc:123", "ComputerName": "ws-12",
                               "SHA256String": SHA256, "MD5String": EICAR,
                               "DetectDescription": "EICAR test file written",
                               "CommandLine": "C:\\\\Windows\\\\evil.exe http://x.example.com"}},
                    {SHA256, EICAR}, "crowdstrike:ldt:abc:123"),
    "sentinelone": ({"data": {"threatInfo": {"threatId": "1739", "sha256": SHA256,
                                             "threatName": "eicar.com"},
                              "agentDetectionInfo": {"agentIpV4": "10.1.1.9",
                                                     "externalIp": "203.0.113.66"}}},
                    {SHA256, "203.0.113.66"}, "sentinelone:1739"),
    "thehive": ({"objectType": "alert", "operation": "Creation",
                 "object": {"_id": "~41", "title": "Phishing", "description": "see report",
                            "observables": [{"dataType": "url", "data": "http://example.com/p"},
                                            {"dataType": "ip", "data": "203.0.113.66"},
                                            {"dataType": "mail", "data": "a@b.example.com"}]}},
                {"http://example.com/p", "203.0.113.66"}, "thehive:~41@Creation"),
    "ocsf": ({"class_uid": 2004, "finding_info": {"uid": "f-77", "title": "IOC hit"},
              "observables": [{"name": "dst_endpoint.ip", "type_id": 2, "type": "IP Address",
                               "value": "203.0.113.66"},
                              {"name": "file.hashes", "type": "Hash", "value": EICAR}]},
             {"203.0.113.66", EICAR}, "ocsf:f-77"),
    "graylog": ({"event_definition_id": "ed1", "event_definition_title": "IOC",
                 "event": {"id": "01HZX", "message": "block 203.0.113.66 now",
                           "fields": {"src_ip": "10.0.0.3", "dest_domain": "malware.wicar.org"}},
                 "backlog": []},
                {"203.0.113.66", "malware.wicar.org"}, "graylog:01HZX"),
    "sumologic": ({"SearchName": "proxy iocs", "SearchQueryUrl": "https://service.sumologic.com/x",
                   "Id": "sq-9", "Raw": "GET hxxp://malware.wicar[.]org/x from 10.0.0.4"},
                  {"http://malware.wicar.org/x"}, "sumologic:sq-9"),
    "datadog": ({"id": "7411", "alert_id": "5533", "title": "Beacon",
                 "body": "Traffic to 203.0.113.66 detected", "tags": ["env:prod"]},
                {"203.0.113.66"}, "datadog:7411"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_each_format_is_recognised_and_read(fmt):
    doc, expected, idem = FIXTURES[fmt]
    assert formats.detect(doc) == fmt
    used, values = formats.indicators("auto", doc)
    assert used == fmt and expected <= set(values), values
    assert formats.idempotency_key(fmt, doc) == idem


def test_existing_fixtures_still_detected():
    for fmt, doc in (
        ("elastic", ELASTIC),
        ("sentinel", SENTINEL),
        ("splunk", SPLUNK),
        ("wazuh", WAZUH),
    ):
        assert formats.detect(doc) == fmt


async def test_every_format_through_the_receiver(receiver):
    url, _ = await receiver()
    for fmt, (doc, _, _) in FIXTURES.items():
        status, body = await post(url, f"/v1/alerts/{fmt}?source=bearer&wait=10", doc, BEARER)
        assert status == 200, (fmt, body)
        e = body["enrichment"]
        assert e["format"] == fmt and e["is_risky"] is True, (fmt, e)


SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
MORE = [  # documented fields beyond the fixtures above (each was missed once)
    ("ocsf", {"class_uid": 2004, "finding_info": {"uid": "f-1"}, "evidences": [
        {"file": {"name": "a.exe", "hashes": [{"algorithm_id": 6, "algorithm": "SHA-256",
                                                "value": SHA256}]},
         "url": {"url_string": "http://malware.wicar.org/a"}}]},
     {SHA256, "http://malware.wicar.org/a"}),
    ("elastic", {"context": {"alerts": [{"kibana.alert.uuid": "u9",
                                         "dns.question.name": "malware.wicar.org"}]}},
     {"malware.wicar.org"}),
    ("chronicle", {"id": "de_1", "collectionElements": [{"references": [{"event": {
        "network": {"dns": {"questions": [{"name": "malware.wicar.org"}]}}}}]}]},
     {"malware.wicar.org"}),
    ("crowdstrike", {"metadata": {"eventType": "DetectionSummaryEvent"},
                     "event": {"DetectId": "ldt:1", "SHA1String": SHA1}}, {SHA1}),
]  # fmt: skip


@pytest.mark.parametrize("fmt, doc, expected", MORE)
def test_more_documented_fields(fmt, doc, expected):
    used, values = formats.indicators("auto", doc)
    assert used == fmt and expected <= set(values), values
