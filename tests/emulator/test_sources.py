"""IOC sources: collections, Livehunt notifications, the IoC Stream and Intelligence search."""

from __future__ import annotations

import pytest
import vt

from .conftest import EICAR, call


async def test_collection_object_and_members(client):
    coll = await client.get_json_async("/collections/demo-apt-campaign")
    a = coll["data"]["attributes"]
    assert coll["data"]["type"] == "collection" and a["files_count"] == 3
    files = [o async for o in client.iterator("/collections/demo-apt-campaign/files")]
    assert EICAR[2] in {o.id for o in files} and len(files) == 3
    urls = [o async for o in client.iterator("/collections/demo-apt-campaign/urls")]
    assert urls[0].url == "http://malware.wicar.org/data/eicar.com"


@pytest.mark.parametrize("cid,per_type", [("synthetic-101", 26), ("demo-large-campaign", 100)])
async def test_collection_paging_has_no_duplicates(client, cid, per_type):
    for rel in ("files", "domains", "urls", "ip_addresses"):
        ids = [o.id async for o in client.iterator(f"/collections/{cid}/{rel}", batch_size=7)]
        assert len(ids) == len(set(ids)) >= per_type - 1, rel
    it = client.iterator(f"/collections/{cid}/domains", batch_size=40)
    assert (await it.meta_async)["count"] >= per_type - 1


async def test_unknown_collection_and_relation(emu):
    status, _, body = await call(emu, "/api/v3/collections/nope")
    assert status == 404 and body["error"]["code"] == "NotFoundError"
    status, _, body = await call(emu, "/api/v3/collections/synthetic-4/comments")
    assert status == 400 and body["error"]["code"] == "InvalidArgumentError"


async def test_livehunt_notifications(client):
    hits = [
        o async for o in client.iterator("/intelligence/hunting_notification_files", batch_size=20)
    ]
    assert len(hits) == len({o.id for o in hits}) == 45
    ctx = hits[0].context_attributes
    assert {
        "notification_id",
        "notification_date",
        "rule_name",
        "ruleset_name",
        "ruleset_id",
        "match_in_subfile",
    } <= set(ctx)
    assert hits[0].type == "file" and hits[0].last_analysis_stats


async def test_ioc_stream(client):
    everything = [o async for o in client.iterator("/ioc_stream", batch_size=25)]
    assert {o.type for o in everything} == {"file", "url", "domain", "ip_address"}
    assert len(everything) == len({(o.type, o.id) for o in everything})
    ctx = everything[0].context_attributes
    assert {"notification_id", "notification_date", "origin", "sources", "tags"} <= set(ctx)
    doms = await client.get_json_async("/ioc_stream", params={"filter": "entity_type:domain"})
    assert doms["data"] and {o["type"] for o in doms["data"]} == {"domain"}
    bare = await client.get_json_async(
        "/ioc_stream", params={"descriptors_only": "true", "filter": "entity_type:url"}
    )
    assert all("attributes" not in o and o["context_attributes"] for o in bare["data"])
    with pytest.raises(vt.APIError):
        await client.get_json_async("/ioc_stream", params={"filter": "weird:1"})


async def test_intelligence_search(client):
    found = [
        o
        async for o in client.iterator("/intelligence/search", params={"query": "p:20+"}, limit=30)
    ]
    assert found and all(o.last_analysis_stats["malicious"] >= 20 for o in found)
    pe = await client.get_json_async("/intelligence/search", params={"query": "type:peexe p:1+"})
    assert pe["data"] and all(o["attributes"]["type_tag"] == "peexe" for o in pe["data"])
    doms = await client.get_json_async("/intelligence/search", params={"query": "entity:domain"})
    assert {o["type"] for o in doms["data"]} == {"domain"}
    tagged = await client.get_json_async("/intelligence/search", params={"query": "tag:overlay"})
    assert all("overlay" in o["attributes"]["tags"] for o in tagged["data"])
    for value, kind in (
        (EICAR[0], "file"),
        ("example.com", "domain"),
        ("203.0.113.66", "ip_address"),
        ("http://example.com/", "url"),
    ):
        one = await client.get_json_async("/intelligence/search", params={"query": value})
        assert [o["type"] for o in one["data"]] == [kind], value
    for bad in ("weird:thing", "", "entity:nothing"):
        with pytest.raises(vt.APIError) as exc:
            await client.get_json_async("/intelligence/search", params={"query": bad})
        assert exc.value.code == "InvalidArgumentError"
