"""Scans, analyses and uploads as vt-py sends them."""

from __future__ import annotations

import hashlib
import io
import time

import aiohttp
import pytest
import vt

from connectors.emulator.app import EmulatorConfig
from connectors.emulator.server import running_emulator

from .conftest import EICAR, EICAR_CONTENT, call


async def test_scan_url_then_poll_the_analysis(client):
    url = "http://example.com/new-page"
    analysis = await client.scan_url_async(url, wait_for_completion=False)
    assert analysis.type == "analysis" and analysis.id.startswith("u-")
    first = await client.get_json_async(f"/analyses/{analysis.id}")
    assert first["data"]["attributes"]["status"] == "queued"
    assert first["meta"]["emulator"] is True
    done = await client.get_json_async(f"/analyses/{analysis.id}")
    a = done["data"]["attributes"]
    assert a["status"] == "completed" and sum(a["stats"].values()) == len(a["results"]) > 0
    assert done["meta"]["url_info"] == {"id": analysis.id.split("-")[1], "url": url}
    report = (await client.get_json_async(f"/urls/{vt.url_id(url)}"))["data"]["attributes"]
    assert abs(report["last_analysis_date"] - time.time()) < 5  # reanalysed just now


@pytest.mark.parametrize("polls", [0, 3])
async def test_polls_until_complete_is_configurable(polls):
    async with running_emulator(EmulatorConfig(polls_until_complete=polls)) as emu:
        form = aiohttp.FormData({"url": "http://example.org/x"})
        _, _, body = await call(emu, "/api/v3/urls", method="POST", data=form)
        aid = body["data"]["id"]
        statuses = [(await call(emu, f"/api/v3/analyses/{aid}"))[2] for _ in range(polls + 1)]
        got = [b["data"]["attributes"]["status"] for b in statuses]
        assert got == ["queued"] * polls + ["completed"]


async def test_unknown_analysis_and_missing_url_field(emu):
    status, _, body = await call(emu, "/api/v3/analyses/u-nothing-1")
    assert status == 404 and body["error"]["code"] == "NotFoundError"
    status, _, body = await call(emu, "/api/v3/urls", method="POST", data={"other": "x"})
    assert status == 400 and body["error"]["code"] == "InvalidArgumentError"


async def test_scan_file_via_upload_url_detects_eicar(client):
    analysis = await client.scan_file_async(io.BytesIO(EICAR_CONTENT))  # vt-py uses upload_url
    await client.get_json_async(f"/analyses/{analysis.id}")
    done = await client.get_json_async(f"/analyses/{analysis.id}")
    assert done["meta"]["file_info"] == {
        "sha256": EICAR[2],
        "md5": EICAR[0],
        "sha1": EICAR[1],
        "size": len(EICAR_CONTENT),
    }
    assert done["data"]["attributes"]["stats"]["malicious"] >= 55


async def test_direct_upload_gets_real_hashes_and_becomes_an_object(emu, client):
    content = b"hello world, from the emulator test"
    form = aiohttp.FormData()
    form.add_field("file", content, filename="hello.txt")
    status, _, body = await call(emu, "/api/v3/files", method="POST", data=form)
    assert status == 200 and body["data"]["type"] == "analysis"

    sha256 = hashlib.sha256(content).hexdigest()
    _, _, a = await call(emu, f"/api/v3/analyses/{body['data']['id']}")
    assert a["meta"]["file_info"]["size"] == len(content)
    obj = (await client.get_json_async(f"/files/{hashlib.md5(content).hexdigest()}"))["data"]
    assert obj["id"] == sha256 and obj["attributes"]["size"] == len(content)
    assert obj["attributes"]["sha1"] == hashlib.sha1(content).hexdigest()
    assert abs(obj["attributes"]["last_analysis_date"] - time.time()) < 5


async def test_upload_limits_and_single_use_upload_urls():
    config = EmulatorConfig(direct_upload_limit=1024, upload_url_limit=4096)
    async with running_emulator(config) as emu:
        form = aiohttp.FormData()
        form.add_field("file", b"x" * 2048, filename="big.bin")
        status, _, body = await call(emu, "/api/v3/files", method="POST", data=form)
        assert status == 413 and "upload_url" in body["error"]["message"]
        _, _, body = await call(emu, "/api/v3/files/upload_url")
        upload = body["data"]
        assert upload.startswith(emu.url + "/api/v3/_upload/")
        path = upload[len(emu.url) :]
        form = aiohttp.FormData()
        form.add_field("file", b"x" * 2048, filename="big.bin")
        status, _, body = await call(emu, path, method="POST", data=form)
        assert status == 200 and body["data"]["type"] == "analysis"
        form = aiohttp.FormData()
        form.add_field("file", b"y", filename="again.bin")
        status, _, body = await call(emu, path, method="POST", data=form)
        assert status == 404  # an upload URL is good for one upload
        _, _, body = await call(emu, "/api/v3/files/upload_url")
        form = aiohttp.FormData()
        form.add_field("file", b"z" * 5000, filename="too-big.bin")
        status, _, body = await call(emu, body["data"][len(emu.url) :], method="POST", data=form)
        assert status == 413


async def test_reanalyse_returns_an_analysis(client):
    resp = await client.post_async(f"/files/{EICAR[0]}/analyse")
    body = await resp.json_async()
    assert body["data"]["type"] == "analysis" and body["data"]["id"].startswith("f-" + EICAR[2])
