from __future__ import annotations

from typing import List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.core.extract import extract
from connectors.core.observable import Kind, Observable, parse

SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
MD5 = "44d88612fea8a8f36de82e1278abb02f"


def found(text: str, **kwargs: object) -> List[Tuple[str, str]]:
    return [(o.kind.value, o.value) for o in extract(text, **kwargs)]  # type: ignore[arg-type]


def test_log_line() -> None:
    line = (
        "Nov 22 11:15:02 fw01 alert: src=10.1.2.3 dst=8.8.8.8 "
        "url=hxxps://evil[.]example[.]com/a?b=c file=dropper.sh "
        f"sha256={SHA256.upper()} md5={MD5} host=www.example.org "
        'msg="connection from 203.0.113.5 to example.net blocked"'
    )
    assert found(line) == [
        ("ipv4", "10.1.2.3"),
        ("ipv4", "8.8.8.8"),
        ("url", "https://evil.example.com/a?b=c"),
        ("sha256", SHA256),
        ("md5", MD5),
        ("domain", "www.example.org"),
        ("ipv4", "203.0.113.5"),
        ("domain", "example.net"),
    ]


def test_results_are_observables_deduplicated_in_order() -> None:
    result = extract("b.example.com a.example.com B.EXAMPLE.COM b.example[.]com")
    assert result == [parse("b.example.com"), parse("a.example.com")]
    assert all(isinstance(o, Observable) for o in result)


def test_url_hides_its_host_and_inner_hash() -> None:
    text = f"GET https://cdn.example.com/files/{SHA256}/x.bin then cdn.example.com again"
    assert found(text) == [
        ("url", f"https://cdn.example.com/files/{SHA256}/x.bin"),
        ("domain", "cdn.example.com"),  # mentioned on its own as well
    ]
    assert found(f"https://cdn.example.com/{MD5}") == [("url", f"https://cdn.example.com/{MD5}")]


def test_schemeless_url() -> None:
    assert found(f"fetched evil.example.com/dl/{MD5}.exe today") == [
        ("url", f"http://evil.example.com/dl/{MD5}.exe")
    ]


def test_file_names_are_not_domains() -> None:
    text = "ran payload.sh, setup.py and README.md; opened invoice.zip, Safari.app, id_rsa.pub"
    assert found(text) == []


def test_file_extension_tld_kept_when_it_is_a_url_host() -> None:
    assert found("see https://evil.zip/x then evil.zip") == [
        ("url", "https://evil.zip/x"),
        ("domain", "evil.zip"),
    ]


def test_hash_named_file_keeps_the_hash() -> None:
    assert found(f"{MD5}.exe and {SHA256}.zip") == [("md5", MD5), ("sha256", SHA256)]


def test_paths() -> None:
    assert found("C:\\Users\\bob\\evil.example.com\\x") == []
    assert found("/var/www/example.com/index.html") == [("domain", "example.com")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("visit evil.com. Then 1.2.3.4.", [("domain", "evil.com"), ("ipv4", "1.2.3.4")]),
        ("(see http://example.org/)", [("url", "http://example.org/")]),
        ("[x](https://example.com/a_(b))", [("url", "https://example.com/a_(b)")]),
        (
            "urls=https://a.example.com/x,https://b.example.com/y",
            [("url", "https://a.example.com/x"), ("url", "https://b.example.com/y")],
        ),
        ("mail john.doe@evil-mail.com", []),  # an address's domain: see test_email_*
        (
            "mapped ::ffff:8.8.4.4 and [2001:db8::1]:443",
            [("ipv4", "8.8.4.4"), ("ipv6", "2001:db8::1")],
        ),
        ("at 11:15:02 mac 00:1a:2b:3c:4d:5e version 1.2.3", []),
        (
            "1.2.3[.]4 and hxxp[:]//bad[.]example[.]net/gate.php",
            [("ipv4", "1.2.3.4"), ("url", "http://bad.example.net/gate.php")],
        ),
        ("bücher.de", [("domain", "xn--bcher-kva.de")]),
        ("999.1.1.1 01.2.3.4", []),
        ("tcp://evil.example.com/x", [("domain", "evil.example.com")]),
    ],
)
def test_tricky_text(text: str, expected: List[Tuple[str, str]]) -> None:
    assert found(text) == expected


def test_kinds_filter_the_result() -> None:
    text = f"https://example.com/a 8.8.8.8 {MD5} example.org"
    assert found(text, kinds=[Kind.IPV4, Kind.MD5]) == [("ipv4", "8.8.8.8"), ("md5", MD5)]
    assert found(text, kinds=["domain"]) == [("domain", "example.org")]


def test_max_chars_caps_the_text() -> None:
    text = "x" * 100 + " 8.8.8.8"
    assert found(text, max_chars=100) == []
    assert found(text, max_chars=200) == [("ipv4", "8.8.8.8")]
    assert found("8.8.8.8 " + "a " * 100_000) == [("ipv4", "8.8.8.8")]


def test_non_text_and_empty() -> None:
    assert extract("") == []
    assert extract(None) == []  # type: ignore[arg-type]


_FRAGMENTS = st.sampled_from(
    [
        "hxxp",
        "://",
        "[.]",
        "[:]",
        "(dot)",
        ".",
        ":",
        "/",
        "\\",
        "@",
        "[",
        "]",
        "(",
        ")",
        " ",
        "\n",
        ",",
        "example",
        "com",
        "zip",
        "1.2.3.4",
        "::",
        "ffff",
        "2001:db8",
        "xn--",
        "-",
        MD5,
        SHA256[:40],
        "\x00",
        "ü",
        "%",
        "?",
        "#",
        "0x7f",
        "\u200b",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_FRAGMENTS, max_size=40).map("".join)))
def test_extract_never_raises(text: str) -> None:
    result = extract(text)
    assert len(result) == len(set(result))
    for obs in result:
        assert parse(obs.value) == obs


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["8.8.8.8", "example.com", MD5, SHA256, "https://example.org/a?b=1", "2606:4700::1111"]
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([" ", "\n", ", ", " | ", "\t"]),
)
def test_joined_indicators_are_all_found(values: List[str], sep: str) -> None:
    expected = []
    for value in values:
        obs = parse(value)
        if obs not in expected:
            expected.append(obs)
    assert extract(sep.join(values)) == expected


def test_email_domains_are_not_extracted_by_default() -> None:
    text = "Phish sent to alice@corp.example.com and bob@example.org from evil.example.net"
    assert found(text) == [("domain", "evil.example.net")]
    assert found("contact: alice@corp.example.com.") == []
    assert found("user[at]mail.example.com") == []  # defanged addresses too


def test_email_domains_extracted_when_asked() -> None:
    text = "Phish sent to alice@corp.example.com from evil.example.net"
    assert found(text, email_domains=True) == [
        ("domain", "corp.example.com"),
        ("domain", "evil.example.net"),
    ]


def test_url_hosts_still_found_next_to_addresses() -> None:
    text = "alice@example.org clicked https://evil.example.net/x and saw example.org/login"
    assert found(text) == [
        ("url", "https://evil.example.net/x"),
        ("url", "http://example.org/login"),
    ]
