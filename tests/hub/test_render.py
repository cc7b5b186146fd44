"""The hub's answer bodies: each warm answer rendered once, the body exactly the JSON of
connectors.core.records.rows."""

from __future__ import annotations

import json

from connectors.core.records import rows
from connectors.core.verdict import Enrichment, Verdict
from connectors.hub.api import RENDERED_MAX, Rendered


def _enr(value: str, cached: bool = True) -> Enrichment:
    return Enrichment(value, "domain", Verdict.HARMLESS, reason="ünïcode “quotes”",
                      normalized=value, link=f"https://www.virustotal.com/gui/domain/{value}",
                      cached=cached)  # fmt: skip


def _expected(results) -> bytes:
    return json.dumps({"results": rows(results)}, ensure_ascii=False).encode("utf-8")


def test_the_body_is_the_json_of_the_rows_and_warm_answers_are_rendered_once():
    r = Rendered(50_000)
    warm, fresh = _enr("a.example"), _enr("b.example", cached=False)
    results = [warm, fresh, warm, _enr("c.example")]
    assert r.body(results) == _expected(results)
    assert len(r) == 2  # the cached answers; a fresh one is a new object every time
    assert r.body(results) == _expected(results) and len(r) == 2
    assert r.body([]) == b'{"results": []}' == _expected([])


def test_an_equal_but_different_answer_is_rendered_for_itself():
    r = Rendered(50_000)
    first = _enr("a.example")
    r.body([first])
    renewed = _enr("a.example")  # the memo entry renewed: a new object, maybe other fields
    renewed.score = 7
    assert r.body([renewed]) == _expected([renewed])
    assert b'"score": 7' in r.body([renewed])


def test_what_is_kept_is_bounded():
    r = Rendered(50_000)
    assert r.size == RENDERED_MAX
    keep = [_enr(f"{i}.example") for i in range(RENDERED_MAX + 10)]
    assert r.body(keep) == _expected(keep)
    assert len(r) == RENDERED_MAX
    assert r.body(keep[-5:]) == _expected(keep[-5:]) and len(r) == RENDERED_MAX
    small = Rendered(3)
    assert small.body(keep[:10]) == _expected(keep[:10]) and len(small) == 3


def test_nothing_is_kept_when_the_enricher_remembers_nothing():
    r = Rendered(0)  # [cache] lru_size = 0: every answer is a new object
    results = [_enr("a.example"), _enr("b.example")]
    assert r.body(results) == _expected(results) and len(r) == 0
