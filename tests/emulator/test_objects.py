"""Object lookups with vt-py over a real socket: shapes, aliases, ids, 404s, relationships."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import vt

from connectors.emulator import engines
from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator

from .conftest import EICAR, EMPTY, REFERENCE, call

FILE_STATS = {
    "harmless",
    "malicious",
    "suspicious",
    "undetected",
    "timeout",
    "type-unsupported",
    "confirmed-timeout",
    "failure",
}
NET_STATS = {"harmless", "malicious", "suspicious", "undetected", "timeout"}


async def test_file_shape_and_eicar(client):
    f = await client.get_json_async(f"/files/{EICAR[0]}")
    assert f["data"]["id"] == EICAR[2] and f["data"]["type"] == "file"
    assert f["meta"]["emulator"] is True
    assert f["data"]["links"]["self"].endswith(f"/api/v3/files/{EICAR[2]}")
    a = f["data"]["attributes"]
    assert set(a["last_analysis_stats"]) == FILE_STATS
    assert 55 <= a["last_analysis_stats"]["malicious"] <= 65
    assert (a["md5"], a["sha1"], a["sha256"]) == EICAR
    assert a["popular_threat_classification"]["suggested_threat_label"] == "virus.eicar/test"
    results = a["last_analysis_results"]
    assert len(results) == len(engines.FILE_ENGINES) == sum(a["last_analysis_stats"].values())
    assert {"Kaspersky", "BitDefender", "ESET-NOD32", "Microsoft", "Sophos"} <= set(results)
    for r in results.values():
        assert {"category", "engine_name", "result", "method", "engine_version"} <= set(r)
        assert (r["result"] is None) == (r["category"] not in ("malicious", "suspicious"))
    assert "trusted_verdict" not in a


async def test_empty_file_is_trusted_goodware(client):
    a = (await client.get_json_async(f"/files/{EMPTY[1]}"))["data"]["attributes"]
    assert a["sha256"] == EMPTY[2] and a["size"] == 0
    assert a["last_analysis_stats"]["malicious"] == a["last_analysis_stats"]["suspicious"] == 0
    assert a["trusted_verdict"]["verdict"] == "goodware"


@pytest.mark.parametrize(
    "path",
    [
        "/domains/example.com",
        "/domains/example.net",
        "/domains/example.org",
        f"/urls/{vt.url_id('http://example.com/')}",
    ],
)
async def test_harmless_fixtures(client, path):
    d = (await client.get_json_async(path))["data"]
    stats = d["attributes"]["last_analysis_stats"]
    assert set(stats) == NET_STATS
    assert stats["malicious"] == stats["suspicious"] == 0 and stats["harmless"] > 50
    results = d["attributes"]["last_analysis_results"].values()
    assert {r["result"] for r in results} <= {"clean", "unrated"}


@pytest.mark.parametrize(
    "path",
    [
        "/domains/malware.wicar.org",
        "/ip_addresses/203.0.113.66",
        f"/urls/{vt.url_id('http://malware.wicar.org/data/eicar.com')}",
    ],
)
async def test_malicious_fixtures(client, path):
    a = (await client.get_json_async(path))["data"]["attributes"]
    assert a["last_analysis_stats"]["malicious"] >= 3
    assert {"malicious", "phishing", "malware"} & {
        r["result"] for r in a["last_analysis_results"].values()
    }


async def test_kind_specific_attributes(client):
    ip = (await client.get_json_async("/ip_addresses/8.8.8.8"))["data"]
    assert ip["id"] == "8.8.8.8"
    assert {
        "asn",
        "as_owner",
        "country",
        "continent",
        "network",
        "regional_internet_registry",
    } <= set(ip["attributes"])
    dom = (await client.get_json_async("/domains/example.com"))["data"]["attributes"]
    for name in ("categories", "registrar", "creation_date", "tld", "last_dns_records", "whois"):
        assert dom[name], name
    assert dom["popularity_ranks"]
    url = (await client.get_json_async(f"/urls/{vt.url_id('http://example.com/')}"))["data"]
    for name in ("url", "last_final_url", "title", "categories", "last_http_response_code"):
        assert name in url["attributes"], name
    obj = await client.get_object_async("/domains/example.org")  # vt.Object parses it too
    assert obj.last_analysis_stats["malicious"] == 0


async def test_md5_and_sha1_lookups_answer_with_the_sha256(client):
    for h in EICAR:
        assert (await client.get_json_async(f"/files/{h}"))["data"]["id"] == EICAR[2]
    candidates = [hashlib.md5(str(i).encode()).hexdigest() for i in range(50)]
    md5 = [h for h in candidates if await call_ok(client, f"/files/{h}")][0]
    first = (await client.get_json_async(f"/files/{md5}"))["data"]
    a = first["attributes"]
    assert a["md5"] == md5 and first["id"] == a["sha256"] != md5
    for alias in (a["sha1"], a["sha256"], md5.upper()):
        again = (await client.get_json_async(f"/files/{alias}"))["data"]
        assert again["id"] == first["id"] and again["attributes"]["md5"] == md5


async def call_ok(client, path):
    try:
        await client.get_json_async(path)
    except vt.APIError:
        return False
    return True


async def test_url_by_url_id_and_by_sha256(client):
    url = "http://example.net/path?q=1"
    d = (await client.get_json_async(f"/urls/{vt.url_id(url)}"))["data"]
    assert d["id"] == hashlib.sha256(url.encode()).hexdigest()
    again = (await client.get_json_async(f"/urls/{d['id']}"))["data"]
    assert again["attributes"]["url"] == url and again["id"] == d["id"]


async def test_invalid_ids_answer_400(emu):
    for path in (
        "/api/v3/files/nothex",
        "/api/v3/files/" + "a" * 33,
        "/api/v3/domains/not a domain",
        "/api/v3/ip_addresses/999.1.1.1",
        "/api/v3/urls/%25%25%25",
    ):
        status, headers, body = await call(emu, path)
        assert status == 400 and body["error"]["code"] == "InvalidArgumentError", path
        assert headers["X-VT-Emulator"] == "1"
        assert headers["Content-Type"].startswith("application/json")
    status, _, body = await call(emu, "/api/v3/urls/" + "ab" * 32)  # a sha256 never seen
    assert status == 404 and body["error"]["code"] == "NotFoundError"
    status, _, body = await call(emu, "/api/v3/nope")
    assert status == 404 and body["error"]["code"] == "NotFoundError"


async def test_not_found_share_is_deterministic_and_spares_fixtures(client):
    missing = []
    for i in range(200):
        try:
            await client.get_json_async(f"/domains/host-{i}.example-{i}.com")
        except vt.APIError as exc:
            assert exc.code == "NotFoundError"
            missing.append(i)
    assert 8 <= len(missing) <= 35  # ~10 %
    again = [i for i in missing if not await call_ok(client, f"/domains/host-{i}.example-{i}.com")]
    assert again == missing


async def test_detection_mix_is_realistic(client):
    levels = {"clean": 0, "low": 0, "malicious": 0}
    for i in range(200):
        try:
            d = await client.get_json_async(f"/files/{i:064x}")
        except vt.APIError:
            continue
        n = d["data"]["attributes"]["last_analysis_stats"]
        bad = n["malicious"] + n["suspicious"]
        levels["clean" if bad == 0 else "low" if bad <= 3 else "malicious"] += 1
    total = sum(levels.values())
    assert 0.4 < levels["clean"] / total < 0.7
    assert 0.07 < levels["low"] / total < 0.25
    assert 0.2 < levels["malicious"] / total < 0.4


async def test_dates_mix_fresh_and_old_reports(client):
    ages, unanalysed = [], 0
    for i in range(60):
        try:
            d = await client.get_json_async(f"/domains/d{i}.example.com")
        except vt.APIError:
            continue
        a = d["data"]["attributes"]
        assert "first_submission_date" not in a  # real domain objects never have one
        if "last_analysis_date" not in a:  # like older real objects: a modification date only
            unanalysed += 1
            assert a["last_modification_date"] > 0
            continue
        ages.append((REFERENCE - a["last_analysis_date"]) / 86400)
    assert 0 < unanalysed < 0.3 * 60
    assert all(0 <= age <= 401 for age in ages)
    old = sum(age > 30 for age in ages)
    assert 0.15 * len(ages) < old < 0.6 * len(ages)


async def test_two_instances_answer_identical_json():
    bodies = []
    config = {"reference_time": REFERENCE}
    for _ in range(2):
        async with running_emulator(EmulatorConfig(**config)) as emu:
            out = []
            for path in (
                f"/api/v3/files/{EICAR[0]}?relationships=contacted_domains,contacted_urls",
                "/api/v3/files/" + "7" * 40,
                "/api/v3/domains/some-domain.com?relationships=resolutions,subdomains",
                "/api/v3/ip_addresses/198.51.100.7",
                f"/api/v3/urls/{vt.url_id('http://x.example/a')}",
            ):
                status, _, body = await call(emu, path)
                out.append((status, body))
            bodies.append(json.dumps(out, sort_keys=True).replace(emu.url, "HOST"))
    assert bodies[0] == bodies[1]
    async with running_emulator(EmulatorConfig(seed=7, **config)) as emu:
        other = [(await call(emu, f"/api/v3/files/{i:064x}"))[2] for i in range(5)]
        status, _, eicar = await call(emu, f"/api/v3/files/{EICAR[2]}")
        assert eicar["data"]["attributes"]["last_analysis_stats"]["malicious"] >= 55
    async with running_emulator(EmulatorConfig(**config)) as emu:
        base = [(await call(emu, f"/api/v3/files/{i:064x}"))[2] for i in range(5)]
    assert json.dumps(other).replace("/", "") != json.dumps(base).replace("/", "")


async def test_relationships_in_the_same_get(client):
    d = await client.get_json_async(
        f"/files/{EICAR[2]}", params={"relationships": "contacted_domains,contacted_ips"}
    )
    rels = d["data"]["relationships"]
    assert set(rels) == {"contacted_domains", "contacted_ips"}
    for rel in rels.values():
        assert len(rel["data"]) == min(10, rel["meta"]["count"])
        assert all(set(x) == {"type", "id"} for x in rel["data"])
        assert rel["links"]["self"].endswith(
            "/relationships/" + next(k for k in rels if rels[k] is rel)
        )
    assert {x["type"] for x in rels["contacted_ips"]["data"]} <= {"ip_address"}
    with pytest.raises(vt.APIError) as exc:
        await client.get_json_async(f"/files/{EICAR[2]}", params={"relationships": "bogus"})
    assert exc.value.code == "InvalidArgumentError"


async def test_relationship_endpoints_page_with_the_iterator(client):
    path = f"/files/{EICAR[2]}"
    rel = await client.get_json_async(path, params={"relationships": "contacted_domains"})
    inline = rel["data"]["relationships"]["contacted_domains"]
    count = inline["meta"]["count"]
    assert count > 3
    full = [o async for o in client.iterator(f"{path}/contacted_domains", batch_size=3)]
    assert len(full) == len({o.id for o in full}) == count
    assert [o.id for o in full[:10]] == [x["id"] for x in inline["data"]]
    assert all(o.type == "domain" and o.last_analysis_stats for o in full)
    described = await client.get_json_async(f"{path}/relationships/contacted_domains")
    assert described["meta"]["count"] == count
    assert all("attributes" not in x for x in described["data"])
    for collection, oid, rel_name in (
        ("domains", "example.org", "resolutions"),
        ("ip_addresses", "203.0.113.66", "communicating_files"),
        ("urls", vt.url_id("http://malware.wicar.org/data/eicar.com"), "downloaded_files"),
        ("domains", "malware.wicar.org", "urls"),
    ):
        items = [o async for o in client.iterator(f"/{collection}/{oid}/{rel_name}", batch_size=4)]
        assert len(items) == len({o.id for o in items}), (collection, rel_name)


async def test_limit_and_cursor_rules(emu):
    path = f"/api/v3/files/{EICAR[2]}/relationships/contacted_domains"
    status, _, body = await call(emu, path + "?limit=1000")
    assert status == 200 and len(body["data"]) <= 40
    status, _, body = await call(emu, path + "?cursor=garbage!")
    assert status == 400 and body["error"]["code"] == "InvalidArgumentError"


async def test_last_analysis_date_within_a_day_of_now_after_reanalysis(client):
    await client.post_async(f"/files/{EICAR[2]}/analyse")
    a = (await client.get_json_async(f"/files/{EICAR[0]}"))["data"]["attributes"]
    assert abs(a["last_analysis_date"] - time.time()) < 5


async def test_objects_carry_the_fields_real_objects_have(client):
    """Shapes seen in real reports (tests/fixtures/vt), consistent with each object's counts."""
    from connectors.core.report import parse_report

    seen = {"gti": 0, "ml": 0, "signed": 0, "distributed": 0, "sigma": 0}
    for i in range(80):
        try:
            f = await client.get_json_async(f"/files/{hashlib.sha256(b'f%d' % i).hexdigest()}")
        except vt.APIError:
            continue
        a = f["data"]["attributes"]
        stats = a["last_analysis_stats"]
        assert stats["harmless"] == 0  # real file reports: clean files are "undetected"
        assert a["threat_severity"]["threat_severity_level"].startswith("SEVERITY_")
        seen["gti"] += "gti_assessment" in a
        seen["signed"] += a.get("signature_info", {}).get("verified") == "Signed"
        seen["distributed"] += "known_distributors" in a
        if "sigma_analysis_results" in a:
            seen["sigma"] += 1
            levels = [x["rule_level"] for x in a["sigma_analysis_results"]]
            assert {k: levels.count(k) for k in set(levels)} == {
                k: v for k, v in a["sigma_analysis_stats"].items() if v
            }
            ids = [x["alert_severity"] for x in a["crowdsourced_ids_results"]]
            assert len(ids) == sum(a["crowdsourced_ids_stats"].values())
        names = [r["result"] for r in a["last_analysis_results"].values() if r["result"]]
        seen["ml"] += any(n in engines.ML_NAMES.values() for n in names)
        r = parse_report(f)
        assert r.severity and r.total == sum(
            stats[k] for k in ("malicious", "suspicious", "undetected")
        )
    assert all(seen.values()), seen


async def test_some_feed_items_have_the_positives_shape(client):
    from connectors.core.report import parse_report

    items = [o async for o in client.iterator("/intelligence/hunting_notification_files", limit=45)]
    odd = [o for o in items if "typeUnsupported" in o.last_analysis_stats]
    assert 0 < len(odd) < len(items)
    for o in odd:
        raw = o.last_analysis_stats
        doc = {"data": {"type": "file", "id": o.id, "attributes": o.to_dict()["attributes"]}}
        r = parse_report(doc)
        assert r.stats["type-unsupported"] == raw["typeUnsupported"]  # the other spelling
        assert r.stats["malicious"] == o.positives and r.total == o.total
