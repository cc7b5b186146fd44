from __future__ import annotations

import base64
import contextlib
import ipaddress
from typing import AsyncIterator, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.core import config
from connectors.core.config import PrivacySettings
from connectors.core.enricher import Enricher
from connectors.core.observable import Kind, Observable, parse
from connectors.core.privacy import skip_reason
from connectors.core.verdict import Verdict

STRICT = PrivacySettings()
DOCS_ALLOWED = PrivacySettings(allow_documentation_ranges=True)


def reason(value: str, privacy: PrivacySettings = STRICT) -> Optional[str]:
    return skip_reason(parse(value), privacy)


@pytest.mark.parametrize(
    "value",
    [
        "44d88612fea8a8f36de82e1278abb02f",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "example.com",
        "https://example.com/a?b=c",
        "ftp://files.example.org/x",
        "http://8.8.8.8/x",
        "http://user@example.com/",
        "2002:808:808::1",  # 6to4 around a global IPv4
    ],
)
def test_allowed(value: str) -> None:
    assert reason(value) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10.0.0.1", "private address 10.0.0.1 (RFC 1918) is never sent to VirusTotal"),
        ("172.16.5.4", "private address 172.16.5.4 (RFC 1918)"),
        ("192.168.1.1", "private address 192.168.1.1 (RFC 1918)"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::fb", "multicast"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "'this network'"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("fd00::1", "unique local"),
        ("::ffff:10.0.0.1", "private address 10.0.0.1"),  # unwrapped by parse
        ("2002:a00:1::1", "inside 6to4 address"),
        ("64:ff9b::c0a8:101", "private address 192.168.1.1 (RFC 1918) (inside NAT64"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_non_global_addresses(value: str, words: str) -> None:
    text = reason(value)
    assert text is not None and words in text
    assert reason(value, DOCS_ALLOWED) is not None  # the switch only opens documentation ranges


@pytest.mark.parametrize(
    "value",
    [
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.200",
        "2001:db8::1",
        "http://192.0.2.10/x",
        "http://[2001:db8::2]:8080/",
    ],
)
def test_documentation_ranges_need_the_switch(value: str) -> None:
    text = reason(value)
    assert text is not None and "documentation address" in text
    assert "allow_documentation_ranges" in text
    assert reason(value, DOCS_ALLOWED) is None


def test_mapped_address_built_directly_is_unwrapped() -> None:
    obs = Observable(Kind.IPV6, "::ffff:192.168.0.1", "::ffff:192.168.0.1")
    assert "private address 192.168.0.1" in (skip_reason(obs, STRICT) or "")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("foo.home.arpa", "internal domain suffix .home.arpa"),
        ("http://wiki.corp/", "internal domain suffix .corp"),
        ("https://nas.lan:8443/", "internal domain suffix .lan"),
        ("http://printer.local/", "internal domain suffix .local"),
        ("http://localhost:8080/", "internal domain suffix .localhost"),
        ("http://intranet/", "single-label name 'intranet'"),
        ("http://10.1.2.3/admin", "URL host: private address 10.1.2.3"),
        ("http://[fe80::1]/", "URL host: link-local"),
        (
            "http://example.com@192.168.0.1/",
            "private address 192.168.0.1",
        ),  # userinfo: host decides
        ("http://2130706433/", "loopback address 127.0.0.1"),  # browsers read it as 127.0.0.1
        ("http://0x7f.1/", "loopback address 127.0.0.1"),
        ("http://127.1/", "loopback address 127.0.0.1"),
    ],
)
def test_internal_hosts(value: str, words: str) -> None:
    text = reason(value)
    assert text is not None and words in text, text


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # parse() refuses these; an Observable built by hand is still judged like a browser would.
        ("http://0300.0250.0.1/", "private address 192.168.0.1"),
        ("http://1.2.3.09/", "ends in a number"),
        ("http://0x7f.0.0.1.example.com/", None),
    ],
)
def test_numeric_hosts_built_directly(url: str, words: Optional[str]) -> None:
    text = skip_reason(Observable(Kind.URL, url, url), STRICT)
    if words is None:
        assert text is None
    else:
        assert text is not None and words in text


@pytest.mark.parametrize(
    "obs",
    [
        Observable(Kind.DOMAIN, "localhost", "localhost"),
        Observable(Kind.DOMAIN, "fileserver", "fileserver"),
        Observable(Kind.DOMAIN, "dc01.ad.internal", "dc01.ad.internal"),
        Observable(Kind.DOMAIN, "Build.CORP.", "Build.CORP."),
    ],
)
def test_internal_domains_built_directly(obs: Observable) -> None:
    assert skip_reason(obs, STRICT) is not None


def test_configured_suffixes() -> None:
    custom = PrivacySettings(internal_suffixes=(".example.com",))
    assert "internal domain suffix .example.com" in (reason("www.example.com", custom) or "")
    assert "internal domain suffix .example.com" in (reason("example.com", custom) or "")
    assert reason("notexample.com", custom) is None
    assert reason("foo.corp.net", custom) is None


def test_other_url_schemes_are_never_sent() -> None:
    obs = Observable(Kind.URL, "file:///etc/passwd", "x")
    assert "scheme 'file'" in (skip_reason(obs, STRICT) or "")


@settings(max_examples=100, deadline=None)
@given(
    st.ip_addresses(v=4, network="10.0.0.0/8")
    | st.ip_addresses(v=4, network="192.168.0.0/16")
    | st.ip_addresses(v=6, network="fc00::/7")
    | st.ip_addresses(v=6, network="ff00::/8")
)
def test_generated_private_addresses_are_skipped(ip: object) -> None:
    assert reason(str(ip), DOCS_ALLOWED) is not None
    assert reason(f"http://{ip if ip.version == 4 else f'[{ip}]'}/x") is not None  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_sent_addresses_are_global(ip: object) -> None:
    obs = parse(str(ip))
    if skip_reason(obs, STRICT) is None:
        address = ipaddress.ip_address(obs.value)
        assert address.is_global or (address.version == 6 and address.sixtofour is not None)
        assert not address.is_multicast


# Every spelling of a non-global address DESIGN.md lists, as an IP and as a URL host.
NON_GLOBAL_SPELLINGS = [
    ("::10.0.0.1", "private address 10.0.0.1"),  # IPv4-compatible (::/96)
    ("::192.168.1.1", "private address 192.168.1.1"),
    ("::7f00:1", "loopback address 127.0.0.1"),
    ("::ffff:10.0.0.1", "private address 10.0.0.1"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local address 169.254.169.254"),
    ("2002:c0a8:101::1", "inside 6to4 address"),
    ("2002:7f00:1::", "loopback address 127.0.0.1"),
    ("64:ff9b::10.0.0.1", "inside NAT64 address"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("fc00::1", "unique local"),
    ("fdff:ffff::1", "unique local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("169.254.0.1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff0e::1", "multicast"),
    ("::ffff:224.0.0.1", "multicast"),
    ("::224.0.0.1", "multicast"),
]


@pytest.mark.parametrize(("value", "words"), NON_GLOBAL_SPELLINGS)
def test_every_non_global_spelling_is_refused(value: str, words: str) -> None:
    text = reason(value)
    assert text is not None and words in text, text
    host = f"[{value}]" if ":" in value else value
    url_text = reason(f"http://{host}/x")
    assert url_text is not None and words in url_text, url_text


def test_compatible_address_built_directly_is_unwrapped() -> None:
    obs = Observable(Kind.IPV6, "::10.0.0.1", "::10.0.0.1")
    assert "private address 10.0.0.1 (RFC 1918) (IPv4-compatible in ::a00:1)" in (
        skip_reason(obs, STRICT) or ""
    )
    url = Observable(Kind.URL, "http://[::192.168.1.1]/", "x")
    assert "private address 192.168.1.1" in (skip_reason(url, STRICT) or "")


# --- nothing private leaves: a loopback recording proxy in front of the emulator -----------


@contextlib.asynccontextmanager
async def recording_proxy(upstream: str) -> AsyncIterator[tuple]:
    """(proxy URL, list of every request line and header block it forwarded)."""
    import aiohttp
    from aiohttp import web

    seen: List[str] = []
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(f"{request.method} {request.raw_path} {dict(request.headers)} {body!r}")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(
            request.method, upstream + request.raw_path, headers=headers, data=body
        ) as r:
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()
        await session.close()


def _url_id(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode().strip("=")


async def test_credentials_and_private_values_never_reach_virustotal(emulator_url, tmp_path):
    secret_url = "http://admin:S3cret@example.org/login"
    private = ["::10.0.0.1", "::192.168.1.1", "http://[::10.0.0.1]/", "http://[::ffff:10.0.0.1]/"]
    async with recording_proxy(emulator_url) as (proxy_url, seen):
        s = config.for_emulator(config.from_mapping({}, env={}), proxy_url, str(tmp_path))
        s = s.with_(quota=config.QuotaSettings(tier="unlimited"))
        enricher = Enricher(s, connector="test")
        try:
            out = await enricher.enrich([secret_url, *private])
        finally:
            await enricher.aclose()
            enricher.close()
    sent = "\n".join(seen)
    assert seen, "the credential-free URL is looked up"
    assert _url_id("http://example.org/login") in sent
    for leak in (
        "S3cret",
        "admin",
        _url_id(secret_url),
        _url_id("http://admin:S3cret@example.org/login"),
    ):
        assert leak not in sent
    for addr in ("10.0.0.1", "192.168.1.1", _url_id("http://10.0.0.1/"), "a00:1", "c0a8"):
        assert addr not in sent
    first, *rest = out
    assert first.verdict not in (Verdict.SKIPPED, Verdict.ERROR)
    assert "credentials removed" in first.reason
    assert first.normalized == "http://example.org/login"
    assert all(r.verdict is Verdict.SKIPPED for r in rest), [r.reason for r in rest]
