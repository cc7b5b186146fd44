"""vt-py itself against the emulator, over a real socket."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest
import vt

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.quota import TierQuota
from connectors.emulator.server import running_emulator

EICAR = (
    "44d88612fea8a8f36de82e1278abb02f",
    "3395856ce81f2b7382dee72602f798b642f14140",
    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
)
EICAR_CONTENT = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture
async def emu():
    async with running_emulator(EmulatorConfig(keys={"pub": "public"})) as running:
        yield running


@pytest.fixture
async def client(emu):
    c = vt.Client("test-key", host=emu.url)
    yield c
    await c.close_async()


async def get(emu, path, key="test-key"):
    headers = {"X-Apikey": key} if key else {}
    async with aiohttp.ClientSession(headers=headers) as s, s.get(emu.url + path) as r:
        return r.status, dict(r.headers), await r.json()


async def test_shapes_for_each_kind(client):
    f = await client.get_json_async(f"/files/{EICAR[0]}")
    assert f["data"]["id"] == EICAR[2] and f["meta"]["emulator"] is True
    stats = f["data"]["attributes"]["last_analysis_stats"]
    assert len(stats) == 8 and stats["malicious"] > 40
    results = f["data"]["attributes"]["last_analysis_results"]
    assert 60 <= len(results) <= 80 and sum(stats.values()) == len(results)
    for path in (
        "/domains/example.com",
        "/ip_addresses/8.8.8.8",
        f"/urls/{vt.url_id('http://example.com/')}",
    ):
        d = await client.get_json_async(path)
        assert len(d["data"]["attributes"]["last_analysis_stats"]) == 5
        cats = {r["result"] for r in d["data"]["attributes"]["last_analysis_results"].values()}
        assert "clean" in cats and None not in cats
    obj = await client.get_object_async("/domains/example.org")  # vt.Object parses it too
    assert obj.last_analysis_stats["malicious"] == 0


async def test_hash_aliases_are_consistent(client):
    ids = set()
    for h in EICAR:
        ids.add((await client.get_json_async(f"/files/{h}"))["data"]["id"])
    assert ids == {EICAR[2]}
    md5 = "0123456789abcdef0123456789abcdef"
    try:
        first = await client.get_json_async(f"/files/{md5}")
    except vt.APIError:
        md5 = "00000000000000000000000000000001"
        first = await client.get_json_async(f"/files/{md5}")
    a = first["data"]["attributes"]
    assert a["md5"] == md5
    by_sha1 = await client.get_json_async(f"/files/{a['sha1']}")
    assert by_sha1["data"]["id"] == first["data"]["id"] == a["sha256"]


async def test_url_by_sha256_id(client):
    url = "http://example.net/path?q=1"
    d = await client.get_json_async(f"/urls/{vt.url_id(url)}")
    again = await client.get_json_async(f"/urls/{d['data']['id']}")
    assert again["data"]["attributes"]["url"] == url


async def test_errors_in_virustotal_shape(emu):
    status, headers, body = await get(emu, "/api/v3/files/nothex")
    assert status == 400 and body["error"]["code"] == "InvalidArgumentError"
    assert headers["X-VT-Emulator"] == "1"
    status, _, body = await get(emu, "/api/v3/files/" + EICAR[0], key=None)
    assert status == 401 and body["error"]["code"] == "AuthenticationRequiredError"
    status, _, body = await get(emu, "/api/v3/nope")
    assert status == 404 and body["error"]["code"] == "NotFoundError"


async def test_not_found_share_is_deterministic(client):
    missing = []
    for i in range(100):
        try:
            await client.get_json_async(f"/files/{i:064x}")
        except vt.APIError as exc:
            assert exc.code == "NotFoundError"
            missing.append(i)
    assert 2 <= len(missing) <= 25


async def test_same_object_from_two_instances():
    bodies = []
    for _ in range(2):
        async with running_emulator() as emu:
            status, _, body = await get(emu, "/api/v3/domains/some-domain.com")
            bodies.append(json.dumps(body["data"]["attributes"], sort_keys=True))
    assert bodies[0] == bodies[1]


async def test_relationships_and_paging(client):
    d = await client.get_json_async(
        f"/files/{EICAR[2]}", params={"relationships": "contacted_domains,contacted_ips"}
    )
    rels = d["data"]["relationships"]
    assert set(rels) == {"contacted_domains", "contacted_ips"}
    expected = [x["id"] for x in rels["contacted_domains"]["data"]]
    seen = [
        o.id async for o in client.iterator(f"/files/{EICAR[2]}/contacted_domains", batch_size=3)
    ]
    assert seen == expected
    ids = [o.id async for o in client.iterator("/collections/synthetic-101/files", batch_size=7)]
    assert len(ids) == len(set(ids)) == 26
    with pytest.raises(vt.APIError):
        await client.get_json_async(f"/files/{EICAR[2]}", params={"relationships": "bogus"})


async def test_scan_url_and_poll(client):
    analysis = await client.scan_url_async("http://example.com/new")
    first = await client.get_json_async(f"/analyses/{analysis.id}")
    assert first["data"]["attributes"]["status"] == "queued"
    done = await client.get_json_async(f"/analyses/{analysis.id}")
    assert done["data"]["attributes"]["status"] == "completed"
    assert done["meta"]["url_info"]["url"] == "http://example.com/new"


async def test_upload_direct_and_via_upload_url(emu, client):
    analysis = await client.scan_file_async(io.BytesIO(EICAR_CONTENT))  # vt-py uses upload_url
    a = await client.get_json_async(f"/analyses/{analysis.id}")
    assert a["meta"]["file_info"]["sha256"] == EICAR[2]
    form = aiohttp.FormData()
    form.add_field("file", b"hello world", filename="hello.txt")
    async with (
        aiohttp.ClientSession(headers={"X-Apikey": "k"}) as s,
        s.post(emu.url + "/api/v3/files", data=form) as r,
    ):
        body = await r.json()
    aid = body["data"]["id"]
    status, _, a = await get(emu, f"/api/v3/analyses/{aid}")
    assert a["meta"]["file_info"]["size"] == 11


async def test_public_tier_quota_and_forbidden_endpoints(emu):
    codes = [(await get(emu, f"/api/v3/domains/d{i}.com", key="pub"))[0] for i in range(6)]
    assert set(codes[:4]) <= {200, 404} and set(codes[4:]) == {429}
    status, headers, body = await get(emu, "/api/v3/domains/x.com", key="pub")
    assert status == 429 and body["error"]["code"] == "QuotaExceededError"
    assert int(headers["Retry-After"]) >= 1


async def test_intelligence_needs_premium():
    async with running_emulator(EmulatorConfig(default_tier="public")) as emu:
        status, _, body = await get(emu, "/api/v3/intelligence/search?query=p:5%2B")
        assert status == 403 and body["error"]["code"] == "ForbiddenError"


async def test_ioc_sources(client):
    hits = [
        o async for o in client.iterator("/intelligence/hunting_notification_files", batch_size=20)
    ]
    assert len(hits) == 45 and hits[0].context_attributes["rule_name"]
    stream = await client.get_json_async("/ioc_stream", params={"filter": "entity_type:domain"})
    assert {o["type"] for o in stream["data"]} == {"domain"}
    found = await client.get_json_async("/intelligence/search", params={"query": "p:20+"})
    assert found["data"] and all(
        o["attributes"]["last_analysis_stats"]["malicious"] >= 20 for o in found["data"]
    )
    with pytest.raises(vt.APIError) as exc:
        await client.get_json_async("/intelligence/search", params={"query": "weird:thing"})
    assert exc.value.code == "InvalidArgumentError"
    coll = await client.get_json_async("/collections/demo-apt-campaign")
    assert coll["data"]["attributes"]["files_count"] == 3


async def test_faults_and_counters(emu):
    async with aiohttp.ClientSession() as s:
        async with s.post(
            emu.url + "/_emulator/faults", json={"error_rates": {"TransientError": 1.0}}
        ) as r:
            assert r.status == 200
        async with s.post(emu.url + "/_emulator/faults", json={"error_rates": {"Nope": 1}}) as r:
            assert r.status == 400
    status, _, body = await get(emu, "/api/v3/domains/example.com")
    assert status == 503 and body["error"]["code"] == "TransientError"
    status, _, counters = await get(emu, "/_emulator/counters")
    assert counters["by_status"]["503"] == 1
    assert counters["by_endpoint"]["GET /api/v3/{collection}/{id}"] == 1
    async with aiohttp.ClientSession() as s:
        await s.post(emu.url + "/_emulator/reset")
    assert (await get(emu, "/_emulator/counters"))[2]["requests"] == 0


def test_tier_quota_daily_reset_on_a_fake_clock():
    now = [86400 * 20000 + 86400 - 120.0]  # two minutes before 00:00 UTC
    q = TierQuota(4, 5, clock=lambda: now[0])
    assert [q.take() for _ in range(5)] == [None] * 4 + ["QuotaExceededError"]
    now[0] += 61
    assert q.take() is None  # fifth of the day
    assert q.take() == "QuotaExceededError"  # the day is spent
    assert q.retry_after() <= 60
    now[0] += 60  # past midnight
    assert q.take() is None
