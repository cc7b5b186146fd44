from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.core.refang import refang

# Characters the patterns care about, so generated text actually exercises them.
TRICKY = st.text(alphabet="[](){}\\.:/@ \tdotaDOTAhxpsXmeowf*", max_size=60)


@pytest.mark.parametrize(
    ("defanged", "clean"),
    [
        ("hxxps://evil[.]example[.]com/a?b=c", "https://evil.example.com/a?b=c"),
        ("hXXp://evil(.)com", "http://evil.com"),
        ("HXXPS[://]evil{.}com", "https://evil.com"),
        ("hxxp[:]//evil[dot]com", "http://evil.com"),
        ("hxxp:[//]evil(dot)com", "http://evil.com"),
        ("meow://evil{dot}com", "http://evil.com"),
        ("meows://evil.com", "https://evil.com"),
        ("fxp://files[.]example[.]org/x", "ftp://files.example.org/x"),
        ("h**p://evil.com", "http://evil.com"),
        ("1.2.3[.]4", "1.2.3.4"),
        ("evil[ . ]com", "evil.com"),
        ("evil[ dot ]com", "evil.com"),
        ("evil[DOT]com", "evil.com"),
        ("evil\\.com", "evil.com"),
        ("evil\\[.]com", "evil.com"),
        ("evil[[.]]com", "evil.com"),
        ("user[at]example[.]com", "user@example.com"),
        ("user[@]example[.]com", "user@example.com"),
        ("http://example[.]com[/]path", "http://example.com/path"),
        ("hxxps[:]//x[.]y", "https://x.y"),
    ],
)
def test_refang_known_forms(defanged: str, clean: str) -> None:
    assert refang(defanged) == clean


@pytest.mark.parametrize(
    "prose",
    [
        "the cat said meow: feed me",
        "a dot b at c",
        "see http://[2001:db8::1]/ and [::1]",
        "plain text with (parentheses) and [brackets]",
        "time 11:15:02 (UTC)",
        "",
    ],
)
def test_prose_is_left_alone(prose: str) -> None:
    assert refang(prose) == prose


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), TRICKY))
def test_refang_is_idempotent_and_total(text: str) -> None:
    once = refang(text)
    assert refang(once) == once


def test_refang_is_linear_on_nested_brackets() -> None:
    # A fixed-point loop would need one pass per nesting level here.
    text = "[" * 20000 + "." + "]" * 20000
    assert refang(text) == "."
