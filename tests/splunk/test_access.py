"""Least privilege: analysts run | vtlookup with the app's role vtconnect_user, without
list_storage_passwords; only that role and admins write the shared cache. The fake splunkd
applies the built app's metadata ACLs and runs its restmap.conf handlers as splunkd would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from . import harness
from .conftest import API_KEY, base_python, conf_for
from .harness import ANALYST_KEY, SESSION_KEY, USER_KEY, FakeSplunkd, run_search

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"


@pytest.fixture
def app_splunkd(built_app, emulator_url):
    with FakeSplunkd(
        conf=conf_for(built_app, emulator_url),
        passwords={"api_key": API_KEY},
        app_dir=built_app.app_dir,
        python=base_python(),
    ) as sd:
        yield sd


def call(sd: FakeSplunkd, path: str, token: str, method: str = "GET", body: bytes = b""):
    req = urllib.request.Request(
        f"{sd.uri}/servicesNS/nobody/vtconnect/{path}?output_mode=json",
        data=body or None,
        method=method,
        headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def search_as(built_app, sd, home, token, chunk):
    return run_search(
        built_app.app_dir, sd, ["field=dest"], [chunk], python=base_python(),
        env=harness.command_env(home), session_key=token,
    )  # fmt: skip


def test_analyst_with_the_app_role_needs_no_list_storage_passwords(
    built_app, app_splunkd, splunk_home
):
    info, replies, rc = search_as(
        built_app, app_splunkd, splunk_home, ANALYST_KEY, [{"dest": EICAR_MD5}]
    )
    assert rc == 0, info.messages
    assert replies[0].records[0]["vt_verdict"] == "malicious"
    assert f"file:{EICAR_MD5}" in app_splunkd.kv["vtconnect_cache"]  # the role writes the cache
    assert app_splunkd.handler_errors == []


def test_without_the_endpoint_the_analyst_could_not_read_the_key(
    built_app, splunk_home, emulator_url
):
    # What analysts met before: storage/passwords refuses them (no list_storage_passwords).
    conf = conf_for(built_app, emulator_url)
    with FakeSplunkd(conf=conf, passwords={"api_key": API_KEY}) as sd:
        info, replies, rc = search_as(built_app, sd, splunk_home, ANALYST_KEY, [{"dest": "x"}])
    assert rc == 1 and replies == []
    assert "no VirusTotal API key" in info.messages[0][1]


def test_user_without_the_role_is_told_which_role(built_app, app_splunkd, splunk_home):
    info, replies, rc = search_as(built_app, app_splunkd, splunk_home, USER_KEY, [{"dest": "x"}])
    assert rc == 1 and replies == []
    errors = [text for level, text in info.messages if level == "ERROR"]
    assert len(errors) == 1 and "role vtconnect_user" in errors[0], errors
    assert API_KEY not in errors[0]


def test_credential_endpoint(app_splunkd):
    status, doc = call(app_splunkd, "vtconnect/credential", USER_KEY)
    assert status == 403 and "vtconnect_user" in doc["error"] and API_KEY not in json.dumps(doc)
    assert call(app_splunkd, "vtconnect/credential", ANALYST_KEY) == (200, {"api_key": API_KEY})
    assert call(app_splunkd, "vtconnect/credential", SESSION_KEY) == (200, {"api_key": API_KEY})
    status, doc = call(app_splunkd, "vtconnect/credential", ANALYST_KEY, "POST", b"{}")
    assert status == 405 and "error" in doc
    assert app_splunkd.handler_errors == []


def test_only_the_app_role_and_admins_write_the_cache(app_splunkd):
    doc = json.dumps([{"_key": f"file:{EICAR_MD5}", "verdict": "harmless"}]).encode()
    path = "storage/collections/data/vtconnect_cache/batch_save"
    assert call(app_splunkd, path, USER_KEY, "POST", doc)[0] == 403
    assert "vtconnect_cache" not in app_splunkd.kv or not app_splunkd.kv["vtconnect_cache"]
    assert call(app_splunkd, path, ANALYST_KEY, "POST", doc)[0] == 200
    assert call(app_splunkd, path, SESSION_KEY, "POST", doc)[0] == 200
    # Reading stays open to every role (the lookup and dashboards).
    find = "storage/collections/data/vtconnect_cache/batch_find"
    assert call(app_splunkd, find, USER_KEY, "POST", b'[{"query": {}}]')[0] == 200


def test_shipped_acls(app_splunkd):
    read, write = app_splunkd.acl("collections/vtconnect_cache")
    assert "*" not in write and set(write) == {"admin", "sc_admin", "vtconnect_user"}
    read, write = app_splunkd.acl("passwords")
    assert set(read) == {"admin", "sc_admin"} and set(write) == {"admin", "sc_admin"}


# -- workflow actions: indicator fields only, and only values the privacy filter lets out ---
def conf_file(app_dir, name):
    import configparser

    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(app_dir / "default" / name, encoding="utf-8")
    return {s: dict(cp[s]) for s in cp.sections()}


def test_workflow_actions_are_offered_on_indicator_fields_only(built_app):
    actions = conf_file(built_app.app_dir, "workflow_actions.conf")
    for name, action in actions.items():
        names = [f.strip() for f in action["fields"].split(",")]
        assert "*" not in names, name
        assert not {"user", "src_user", "host", "dest_host", "dvc", "_raw"} & set(names), name
        if action["type"] == "link":  # never a field value straight into VirusTotal's search
            uri = action["link.uri"]
            assert uri.startswith("/app/vtconnect/"), name


def test_investigation_view_links_only_what_may_be_looked_up(built_app, splunkd, splunk_home):
    # The view's base search, as the workflow action fills its token.
    import xml.etree.ElementTree as ET

    view = ET.parse(built_app.app_dir / "default/data/ui/views/vtconnect_indicator.xml")
    query = view.find("./search[@id='lookup']/query").text
    assert "| vtlookup field=indicator" in query
    values = [EICAR_MD5, "10.1.2.3", "fileserver.corp", "alice"]
    _, replies, rc = run_search(
        built_app.app_dir, splunkd, ["field=indicator"], [[{"indicator": v} for v in values]],
        python=base_python(), env=harness.command_env(splunk_home),
    )  # fmt: skip
    assert rc == 0
    out = {r["indicator"]: r for r in replies[0].records}
    assert out[EICAR_MD5]["vt_link"].startswith("https://www.virustotal.com/gui/file/")
    for private in values[1:]:
        assert out[private]["vt_verdict"] == "skipped" and out[private]["vt_link"] == ""
