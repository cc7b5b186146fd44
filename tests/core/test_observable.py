from __future__ import annotations

import hashlib
import ipaddress
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.core.observable import (
    KIND_CHOICES,
    InvalidObservable,
    Kind,
    Observable,
    classify,
    parse,
)

EICAR = {
    Kind.MD5: "44d88612fea8a8f36de82e1278abb02f",
    Kind.SHA1: "3395856ce81f2b7382dee72602f798b642f14140",
    Kind.SHA256: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
}

# --- strategies -------------------------------------------------------------------------------

hashes = (
    st.sampled_from([16, 20, 32])
    .flatmap(lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.booleans()))
    .map(lambda t: t[0].hex().upper() if t[1] else t[0].hex())
)

ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(str)
_sub_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
# Four characters or more, starting with a letter: never itself a public suffix like "com.io".
_reg_label = st.from_regex(r"[a-z][a-z0-9-]{2,15}[a-z0-9]", fullmatch=True)
_suffixes = st.sampled_from(["com", "net", "org", "de", "info", "co.uk", "xn--p1ai"])
domains = st.builds(
    lambda subs, reg, suffix: ".".join([*subs, reg, suffix]),
    st.lists(_sub_label, max_size=2),
    _reg_label,
    _suffixes,
)
mixed_case_domains = st.tuples(domains, st.randoms()).map(
    lambda t: "".join(c.upper() if t[1].random() < 0.3 else c for c in t[0])
)
_paths = st.from_regex(
    r"(/[A-Za-z0-9_~%!$&*+,;=@-]{0,10}){0,3}(\?[a-z0-9=&]{0,12})?", fullmatch=True
)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path or '/'}",
    st.sampled_from(["http", "https", "ftp", "HTTP", "Https"]),
    st.one_of(domains, ipv4s),
    st.sampled_from(["", ":8080", ":443", ":80"]),
    _paths,
)
indicators = st.one_of(hashes, ipv4s, ipv6s, domains, urls)

_DOT_FORMS = ["[.]", "(.)", "{.}", "[dot]", "(dot)", "{DOT}", "[ . ]", "\\."]


def defang(value: str, rnd) -> str:  # type: ignore[no-untyped-def]
    out = value
    if out.lower().startswith("http"):
        out = rnd.choice(["hxxp", "hXXp", "meow", "h**p"]) + out[4:]
    if "://" in out:
        out = out.replace("://", rnd.choice(["[://]", "[:]//", ":[//]", "://"]), 1)
    return "".join(rnd.choice(_DOT_FORMS) if c == "." else c for c in out)


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=120), st.binary(max_size=120).map(lambda b: b.decode("latin-1"))),
    st.sampled_from([None, *KIND_CHOICES]),
)
def test_parse_raises_only_invalid_observable(text: str, kind: str) -> None:
    try:
        obs = parse(text, kind)
    except InvalidObservable as exc:
        assert str(exc)
    else:
        assert isinstance(obs, Observable)
        assert parse(obs.value, obs.kind.value) == obs


@settings(max_examples=200, deadline=None)
@given(indicators)
def test_normalisation_is_a_fixed_point(value: str) -> None:
    obs = parse(value)
    assert parse(obs.value) == obs
    assert parse(obs.value, obs.kind.value) == obs


@settings(max_examples=100, deadline=None)
@given(hashes)
def test_hashes_classify_by_length(value: str) -> None:
    obs = parse(value)
    assert obs.kind == {32: Kind.MD5, 40: Kind.SHA1, 64: Kind.SHA256}[len(value)]
    assert obs.value == obs.vt_id == value.lower()
    assert obs.kind.is_hash and obs.cache_key == "file:" + value.lower()


@settings(max_examples=100, deadline=None)
@given(ipv4s)
def test_ipv4_classify(value: str) -> None:
    assert parse(value) == Observable(Kind.IPV4, value, value)


@settings(max_examples=100, deadline=None)
@given(ipv6s)
def test_ipv6_classify_compressed(value: str) -> None:
    obs = parse(value.upper())
    assert obs.kind is Kind.IPV6
    assert obs.value == str(ipaddress.IPv6Address(value))
    assert parse(f"[{value}]") == obs
    # The exploded form normalises to the same compressed one.
    assert parse(ipaddress.IPv6Address(value).exploded) == obs


@settings(max_examples=100, deadline=None)
@given(mixed_case_domains)
def test_domains_classify_lower_case(value: str) -> None:
    obs = parse(value)
    assert obs == Observable(Kind.DOMAIN, value.lower(), value.lower())
    assert parse(value + ".") == obs


@settings(max_examples=100, deadline=None)
@given(urls)
def test_urls_classify(value: str) -> None:
    obs = parse(value)
    assert obs.kind is Kind.URL
    scheme = value.split(":", 1)[0].lower()
    assert obs.value.startswith(scheme + "://")
    assert ":80/" not in obs.value or scheme != "http"
    assert ":443/" not in obs.value or scheme != "https"


@settings(max_examples=200, deadline=None)
@given(st.one_of(domains, urls, ipv4s), st.randoms(use_true_random=False))
def test_defanged_forms_parse_like_clean_ones(value: str, rnd) -> None:  # type: ignore[no-untyped-def]
    assert parse(defang(value, rnd)) == parse(value)


# --- concrete cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EICAR))
def test_eicar_hashes_any_case(kind: Kind) -> None:
    value = EICAR[kind]
    for raw in (value, value.upper(), f"  {value.upper()}\n", f'"{value}"', f"\u200b{value}"):
        obs = parse(raw)
        assert obs == Observable(kind, value, value)
        assert obs.path == f"/files/{value}"
        assert obs.gui_link == f"https://www.virustotal.com/gui/file/{value}"
    assert parse(value, "file") == parse(value, "hash") == parse(value, kind.value)


def test_hash_kind_mismatch() -> None:
    with pytest.raises(InvalidObservable, match="expected md5"):
        parse(EICAR[Kind.SHA256], "md5")
    with pytest.raises(InvalidObservable, match="hex"):
        parse("g" * 32, "hash")


def test_defanged_url() -> None:
    obs = parse("hxxps://evil[.]example[.]com/a?b=c")
    assert obs.kind is Kind.URL
    assert obs.value == "https://evil.example.com/a?b=c"
    from vt import url_id

    assert obs.vt_id == url_id("https://evil.example.com/a?b=c")
    assert obs.path == "/urls/" + obs.vt_id
    assert obs.cache_key == "url:" + obs.vt_id
    sha = hashlib.sha256(b"https://evil.example.com/a?b=c").hexdigest()
    assert obs.gui_link == "https://www.virustotal.com/gui/url/" + sha


def test_defanged_ip() -> None:
    assert parse("1.2.3[.]4") == Observable(Kind.IPV4, "1.2.3.4", "1.2.3.4")
    assert parse("1.2.3.4").gui_link == "https://www.virustotal.com/gui/ip-address/1.2.3.4"
    assert parse("1.2.3.4").path == "/ip_addresses/1.2.3.4"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
        ("example.com.", "example.com"),
        ("Example.COM", "example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("example\u3002com", "example.com"),  # ideographic full stop
        ("<example.org>", "example.org"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: "ß" is kept, not mapped to "ss"
        ("xn--strae-oqa.de", "xn--strae-oqa.de"),
        ("STRASSE.de", "strasse.de"),
    ],
)
def test_domains(raw: str, value: str) -> None:
    obs = parse(raw)
    assert obs == Observable(Kind.DOMAIN, value, value)
    assert obs.path == "/domains/" + value
    assert obs.cache_key == "domain:" + value
    assert obs.gui_link == "https://www.virustotal.com/gui/domain/" + value


@pytest.mark.parametrize(
    "raw",
    [
        "localhost",
        "server.corp",  # no public suffix
        "co.uk",  # a public suffix itself
        "-bad.example.com",
        "bad-.example.com",
        "a..example.com",
        "under_score.example.com",
        ("a" * 64) + ".com",
        ".".join(["a" * 60] * 5) + ".com",  # longer than 253
        "xn--zz.com",  # invalid punycode
        "example.com:8080",
    ],
)
def test_bad_domains(raw: str) -> None:
    with pytest.raises(InvalidObservable):
        parse(raw)
    assert classify(raw) is None


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("::ffff:8.8.8.8", Kind.IPV4, "8.8.8.8"),
        ("[2001:db8::1]", Kind.IPV6, "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", Kind.IPV6, "2001:db8::1"),
        ("8.8.8.8", Kind.IPV4, "8.8.8.8"),
    ],
)
def test_ips(raw: str, kind: Kind, value: str) -> None:
    assert parse(raw) == Observable(kind, value, value)
    assert parse(raw, "ip").kind is kind


def test_mapped_ipv6_accepted_when_ipv6_asked() -> None:
    assert parse("::ffff:8.8.8.8", "ipv6").value == "8.8.8.8"
    with pytest.raises(InvalidObservable):
        parse("8.8.8.8", "ipv6")
    with pytest.raises(InvalidObservable):
        parse("2001:db8::1", "ipv4")


@pytest.mark.parametrize(
    "raw",
    [
        "1.2.3.256",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "10.0.0.0/8",
        "2001:db8::/32",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7:8:9",
        "::g",
    ],
)
def test_bad_ips(raw: str) -> None:
    with pytest.raises(InvalidObservable):
        parse(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("HTTP://Example.COM:80/Path?Q=1#F", "http://example.com/Path?Q=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("https://example.com:/", "https://example.com/"),
        ("ftp://files.example.org:21/a", "ftp://files.example.org/a"),
        ("www.evil.com/path", "http://www.evil.com/path"),
        ("1.2.3.4/x.exe", "http://1.2.3.4/x.exe"),
        ("http://bücher.de/ä", "http://xn--bcher-kva.de/ä"),
        ("http://[2001:DB8::1]:8080/", "http://[2001:db8::1]:8080/"),
        ("http://[::ffff:8.8.8.8]/", "http://8.8.8.8/"),
        ("http://user:pw@Example.com/", "http://example.com/"),
        ("  <https://example.com/a>  ", "https://example.com/a"),
        ("hxxp://intranet/", "http://intranet/"),  # a URL; privacy decides whether to send it
    ],
)
def test_urls(raw: str, value: str) -> None:
    obs = parse(raw)
    assert obs.kind is Kind.URL
    assert obs.value == value
    assert parse(value) == obs


def test_url_kind_adds_scheme() -> None:
    assert parse("example.com", "url").value == "http://example.com/"
    for url in ("www.evil.com/x?y", "http://evil.com/"):
        with pytest.raises(InvalidObservable, match="not a domain"):
            parse(url, "domain")
    with pytest.raises(InvalidObservable, match="expected url"):
        parse(EICAR[Kind.MD5], "url")


@pytest.mark.parametrize(
    "raw",
    [
        "javascript://alert(1)",
        "file:///etc/passwd",
        "http://",
        "http:///path",
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://example.com:99999/",
        "http://example.com:8o/",
        "http://[2001:db8::1/",
        "http://1.2.3.999/",
        "http://ex\u202eample.com/",  # right-to-left override
        "http://example.com/" + "a" * 2100,
        "readme.txt/x",  # no known suffix: a path, not a URL
    ],
)
def test_bad_urls(raw: str) -> None:
    with pytest.raises(InvalidObservable):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "\u200b",
        '""',
        "[]",
        "a\x00b.com",
        "\x00" * 64,
        "example.com\x00",
        "exa\x07mple.com",
    ],
)
def test_empty_and_control_characters(raw: str) -> None:
    with pytest.raises(InvalidObservable):
        parse(raw)


@pytest.mark.parametrize("raw", [None, 42, b"example.com", ["example.com"]])
def test_non_text_input(raw: object) -> None:
    with pytest.raises(InvalidObservable, match="expected text"):
        parse(raw)  # type: ignore[arg-type]


def test_unknown_kind() -> None:
    with pytest.raises(InvalidObservable, match="unknown kind"):
        parse("example.com", "mac")
    assert parse("example.com", Kind.DOMAIN).kind is Kind.DOMAIN
    assert parse("example.com", "DOMAIN").kind is Kind.DOMAIN


def test_megabyte_string_rejected_quickly() -> None:
    huge = "a" * 1_000_000 + ".com"
    started = time.perf_counter()
    with pytest.raises(InvalidObservable, match="too long"):
        parse(huge)
    assert time.perf_counter() - started < 0.05


def test_classify() -> None:
    assert classify(EICAR[Kind.SHA1]) is Kind.SHA1
    assert classify("example.com") is Kind.DOMAIN
    assert classify("http://example.com/") is Kind.URL
    assert classify("2001:db8::1") is Kind.IPV6
    assert classify("8.8.8.8") is Kind.IPV4
    assert classify("not an indicator") is None


def test_kind_properties() -> None:
    assert [k.collection for k in Kind] == [
        "files",
        "files",
        "files",
        "urls",
        "domains",
        "ip_addresses",
        "ip_addresses",
    ]
    assert [k.gui_type for k in Kind] == [
        "file",
        "file",
        "file",
        "url",
        "domain",
        "ip-address",
        "ip-address",
    ]
    assert [k.group for k in Kind] == ["file", "file", "file", "url", "domain", "ip", "ip"]
    assert [k.is_hash for k in Kind] == [True, True, True, False, False, False, False]
    assert Kind("sha256") is Kind.SHA256 and Kind.SHA256 == "sha256"


def test_observable_is_hashable_and_frozen() -> None:
    obs = parse("example.com")
    assert {obs, parse("EXAMPLE.com.")} == {obs}
    with pytest.raises(AttributeError):
        obs.value = "x"  # type: ignore[misc]


# --- canonical URLs (RFC 3986 6.2.2-6.2.3) ----------------------------------------------------

# Spellings of one URL: one cache key, one VirusTotal id.
SAME_URL = [
    "http://example.com",
    "http://example.com/",
    "HTTP://EXAMPLE.COM",
    "http://example.com:80/",
    "http://Example.Com:/",
    "http://example.com/#top",  # the fragment never reaches a server
    "http://user:pw@example.com/",  # credentials never leave
    "http://ex%61mple.com/",  # an unreserved character percent-encoded in the host
]


@pytest.mark.parametrize("spelling", SAME_URL)
def test_url_spellings_share_one_key_and_id(spelling: str) -> None:
    canonical = parse("http://example.com/")
    obs = parse(spelling)
    assert obs.value == "http://example.com/"
    assert (obs.cache_key, obs.vt_id) == (canonical.cache_key, canonical.vt_id)


@pytest.mark.parametrize(
    ("a", "b", "value"),
    [
        ("http://example.com/a%2fb", "http://example.com/a%2Fb", "http://example.com/a%2Fb"),
        ("http://example.com/~u", "http://example.com/%7Eu", "http://example.com/~u"),
        ("http://example.com/%7eu", "http://example.com/%7Eu", "http://example.com/~u"),
        ("http://example.com/%41%2D%5F", "http://example.com/A-_", "http://example.com/A-_"),
        ("http://example.com?q=1", "http://example.com/?q=1", "http://example.com/?q=1"),
        ("https://example.com:443/x", "https://example.com/x", "https://example.com/x"),
        ("ftp://example.com:21/x", "ftp://example.com/x", "ftp://example.com/x"),
    ],
)
def test_url_equivalent_spellings(a: str, b: str, value: str) -> None:
    assert parse(a).value == parse(b).value == value
    assert parse(a).vt_id == parse(b).vt_id


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a%2Fb%3Fc",  # encoded reserved characters stay encoded
        "http://example.com/a/../b/./c",  # no dot-segment removal: path kept as given
        "http://example.com/x?b=2&a=1",  # no query re-ordering
        "http://example.com/x?a=%20&b=+",
        "http://example.com/Case/Path?Q=V",
        "http://example.com/%zz%",  # malformed escapes kept as given
    ],
)
def test_url_path_and_query_kept(url: str) -> None:
    assert parse(url).value == url


def test_url_userinfo_is_removed_and_flagged() -> None:
    obs = parse("http://admin:S3cret@example.org/login")
    assert obs.value == "http://example.org/login"
    assert obs.userinfo_removed
    assert "S3cret" not in obs.vt_id and obs.vt_id == parse("http://example.org/login").vt_id
    assert not parse("http://example.org/login").userinfo_removed


_pct = st.sampled_from(["%7e", "%7E", "%2f", "%2F", "%41", "%25", "%", "%%34%31", "%zz", "~"])
_url_text = st.lists(
    st.one_of(_pct, st.from_regex(r"[A-Za-z0-9/?=&._~-]{0,6}", fullmatch=True)), max_size=8
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["http", "HTTPS", "ftp"]),
    st.one_of(domains, mixed_case_domains, ipv4s),
    st.sampled_from(["", ":", ":80", ":443", ":21", ":8080", ":0080"]),
    _url_text,
    st.sampled_from(["", "#", "#frag"]),
    st.sampled_from(["", "user@", "u:p@"]),
)
def test_canonical_url_is_a_fixed_point(scheme, host, port, rest, frag, userinfo) -> None:  # type: ignore[no-untyped-def]
    try:
        obs = parse(f"{scheme}://{userinfo}{host}{port}/{rest}{frag}", "url")
    except InvalidObservable:
        return
    again = parse(obs.value)
    assert again == obs and again.value == obs.value
    scheme_text, _, after = obs.value.partition("://")
    authority = after.partition("/")[0]
    assert scheme_text == scheme.lower() and authority == authority.lower()
    assert "#" not in obs.value and "@" not in authority


# --- IDNA 2008 / UTS 46 --------------------------------------------------------------------


def test_idna_2008_keeps_sharp_s() -> None:
    assert parse("straße.de").value == "xn--strae-oqa.de"
    assert parse("xn--strae-oqa.de") == parse("straße.de")
    assert parse("strasse.de").value == "strasse.de"  # a different domain
    assert parse("http://straße.de/x").value == "http://xn--strae-oqa.de/x"
    assert parse("http://xn--strae-oqa.de/x") == parse("http://STRAßE.de/x")


@pytest.mark.parametrize("raw", ["xn--zzzzzzz-.de", "a\u2764.ws", "xn--a.de"])
def test_idna_2008_refuses_invalid_names(raw: str) -> None:
    with pytest.raises(InvalidObservable):
        parse(raw, "domain")


# --- IPv4 inside IPv6 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("::10.0.0.1", "10.0.0.1"),
        ("::192.168.1.1", "192.168.1.1"),
        ("::a00:1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
    ],
)
def test_ipv4_compatible_and_mapped_unwrapped(raw: str, value: str) -> None:
    assert parse(raw) == Observable(Kind.IPV4, value, value)
    assert parse(f"http://[{raw}]/").value == f"http://{value}/"


def test_ipv6_own_addresses_not_unwrapped() -> None:
    assert parse("::1").kind is Kind.IPV6
    assert parse("::").kind is Kind.IPV6


# --- bare file names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["invoice.zip", "README.md", "setup.py", "run.sh", "backup.zip/data.sql"]
)
def test_bare_file_names_refused_by_auto_detection(raw: str) -> None:
    with pytest.raises(InvalidObservable, match="looks like a file name"):
        parse(raw)
    assert classify(raw) is None


def test_file_names_accepted_when_the_kind_is_given() -> None:
    assert parse("invoice.zip", "domain").value == "invoice.zip"
    assert parse("backup.zip/data.sql", "url").value == "http://backup.zip/data.sql"
    assert parse("http://backup.zip/data.sql").kind is Kind.URL  # a scheme says URL
