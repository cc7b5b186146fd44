"""One file, one lookup: an alert that names a file by its MD5, SHA-1 and SHA-256 costs one API
call. The receiver runs on a real socket, the core asks an emulator of its own (its counters are
this test's alone) through a recording proxy (which shows which hash was asked)."""

from __future__ import annotations

import aiohttp
import pytest

from connectors.emulator.server import running_emulator
from tests.core.test_privacy import recording_proxy

from .test_missed_kinds import receiver_asking
from .test_receiver import BEARER, post

MD5 = "44d88612fea8a8f36de82e1278abb02f"
SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
OBJECTS = "GET /api/v3/{collection}/{id}"


@pytest.fixture
async def receiver_and_emulator(tmp_path):
    async with (
        running_emulator() as emu,
        recording_proxy(emu.url) as (proxy_url, seen),
        receiver_asking(proxy_url, tmp_path) as url,
    ):
        yield url, emu, seen


async def object_calls(emu):
    async with aiohttp.ClientSession() as s, s.get(emu.url + "/_emulator/counters") as r:
        return (await r.json())["by_endpoint"].get(OBJECTS, 0)


def asked(seen):
    return [line.split()[1].rsplit("/", 1)[-1].split("?")[0] for line in seen
            if line.startswith("GET /api/v3/files/")]  # fmt: skip


async def test_md5_sha1_and_sha256_of_one_file_cost_one_call(receiver_and_emulator):
    url, emu, seen = receiver_and_emulator
    # The weakest hash first in the alert: the strongest is still the one asked.
    alert = {"md5": MD5.upper(), "sha1": SHA1, "sha256": SHA256, "url": "http://example.com/a"}
    status, answer = await post(url, "/v1/alerts/generic?wait=10", alert, BEARER)
    assert status == 200, answer
    assert await object_calls(emu) == 2  # the file and the URL
    assert asked(seen) == [SHA256]
    block = answer["enrichment"]
    by_value = {o["value"]: o for o in block["observables"]}
    files = [by_value[v] for v in (MD5.upper(), SHA1, SHA256)]
    assert {o["verdict"] for o in files} == {"malicious"}
    assert all(o["evidence"] == files[0]["evidence"] for o in files)  # one report, three names
    primary = [o for o in files if "same_as" not in o]
    assert len(primary) == 1
    assert sorted(primary[0]["aliases"]) == sorted(o["value"] for o in files if o is not primary[0])
    assert block["indicators"] == 2  # the file and the URL


async def test_hashes_of_different_files_are_each_asked(receiver_and_emulator):
    url, emu, seen = receiver_and_emulator
    # A SHA-256 VirusTotal does not know says nothing about the MD5 beside it; an MD5 of another
    # file than the SHA-256's is a file of its own.
    missing = next(
        h
        for h in (f"{i:064x}" for i in range(1, 10_000))
        if emu.emulator.objects.synth.is_missing("file", h)
    )
    other = "f" * 64
    alert = {"md5": MD5, "sha256": [missing, other]}
    status, answer = await post(url, "/v1/alerts/generic?wait=10", alert, BEARER)
    assert status == 200, answer
    assert await object_calls(emu) == 3
    assert set(asked(seen)[:2]) == {missing, other} and asked(seen)[2] == MD5
    by_value = {o["value"]: o for o in answer["enrichment"]["observables"]}
    assert by_value[missing]["verdict"] == "not_found"
    assert by_value[MD5]["verdict"] == "malicious"
    assert not any("same_as" in o for o in by_value.values())
    assert answer["enrichment"]["indicators"] == 3


async def test_a_known_sha256_answers_its_md5_in_a_later_alert(receiver_and_emulator):
    url, emu, _ = receiver_and_emulator
    status, _ = await post(url, "/v1/alerts/generic?wait=10", {"sha256": SHA256}, BEARER)
    assert status == 200
    status, answer = await post(url, "/v1/alerts/generic?wait=10", {"hash": f"md5 {MD5}"}, BEARER)
    assert status == 200, answer
    assert await object_calls(emu) == 1
    assert answer["enrichment"]["observables"][0]["verdict"] == "malicious"


async def test_elastic_and_sentinel_shapes_show_one_file_once(receiver_and_emulator):
    url, emu, _ = receiver_and_emulator
    alert = {"md5": MD5, "sha256": SHA256, "ip": "203.0.113.66"}
    status, answer = await post(url, "/v1/alerts/generic?wait=10&shape=elastic", alert, BEARER)
    assert status == 200, answer
    files = [e for e in answer["threat"]["enrichments"] if e["indicator"]["type"] == "file"]
    assert len(files) == 1  # one ECS indicator for the file, with every hash of it
    assert files[0]["indicator"]["file"]["hash"] == {"md5": MD5, "sha1": SHA1, "sha256": SHA256}
    status, answer = await post(url, "/v1/alerts/generic?wait=10&shape=sentinel", alert, BEARER)
    message = answer["comment"]["properties"]["message"]
    assert message.count("<tr><td>") == 2  # the file and the address
    assert f"{MD5} = {SHA256}" in message and " of 2 indicators risky" in message
    assert await object_calls(emu) == 2  # the file once, the address once; the repeat cached
