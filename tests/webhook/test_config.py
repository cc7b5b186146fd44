"""The [webhook] section: a wrong value is a clear ConfigError at start, never a failing request."""

from __future__ import annotations

import base64

import pytest

from connectors.core.config import ConfigError
from connectors.webhook.config import load

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
BASE = {"name": "s", "auth": "bearer", "secret": "x" * 20}


def one(**extra):
    return load({"webhook": {"sources": [dict(BASE, **extra)]}}).sources["s"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"rate_per_minute": "10"}, "rate_per_minute must be of type int"),
        ({"max_body_bytes": 0}, "max_body_bytes must be above 0"),
        ({"retry_base": -1.0}, "retry_base must be above 0"),
        ({"allow_private": 1}, "allow_private must be of type bool"),
        ({"callback_hosts": "hooks.example.com"}, "callback_hosts must be of type list"),
        ({"callback_hosts": [1]}, "callback_hosts must be a list of host names"),
        ({"name": "a b"}, "name must be letters"),
        ({"format": "pdf"}, "format must be one of"),
        ({"auth": "magic"}, "auth must be one of"),
        ({"secret": "short"}, "at least 16 characters"),
        ({"auth": "standard"}, "whsec_<base64> for auth = 'standard'"),
        ({"auth": "standard", "secret": "whsec_not-base64!!!!!!"}, "whsec_<base64>"),
        ({"output": "pdf"}, "output must be"),
        ({"callback_url": "ftp://x.example.com"}, "http(s) URL"),
        ({"callback_url": "http://x.example.com", "callback_secret": WHSEC}, "must be https"),
        ({"callback_url": "https://x.example.com"}, "callback_secret must be whsec_"),
        ({"surprise": 1}, "].surprise (known: allow_http"),
    ],
)
def test_bad_source_values(extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        one(**extra)


def test_good_values_and_section_keys():
    src = one(
        auth="standard",
        secret=WHSEC,
        retry_base=1,  # an int where a float is expected is fine
        callback_url="https://hooks.example.com/x",
        callback_secret=WHSEC,
        callback_hosts=["hooks.example.com"],
    )
    assert src.callback_hosts == ("hooks.example.com",) and WHSEC not in repr(src)
    assert load({"webhook": {"max_wait": 5}}).max_wait == 5.0
    with pytest.raises(ConfigError, match="max_wait"):
        load({"webhook": {"max_wait": "soon"}})
    assert load({}).keep_days == 7.0 and load({"webhook": {"keep_days": 1}}).keep_days == 1.0
    for bad in (0, -1, True, "a week"):
        with pytest.raises(ConfigError, match="keep_days"):
            load({"webhook": {"keep_days": bad}})
    with pytest.raises(ConfigError, match="name is required"):
        load({"webhook": {"sources": [{"auth": "none"}]}})
    with pytest.raises(ConfigError, match="used twice"):
        load({"webhook": {"sources": [BASE, BASE]}})
    assert one(auth="none", secret="").auth == "none"  # only when chosen explicitly


def test_lease_seconds():
    assert load({}).lease_seconds == 300.0
    assert load({"webhook": {"lease_seconds": 30}}).lease_seconds == 30.0
    for bad in (0, -1, "5", True):
        with pytest.raises(ConfigError, match="webhook.lease_seconds"):
            load({"webhook": {"lease_seconds": bad}})
