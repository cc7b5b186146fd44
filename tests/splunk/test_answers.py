"""Kept answers (vtlookup_support/answers.py): scoped by settings and type option, gone when
their time is up, and never a reason for a search to fail."""

from __future__ import annotations

import sys

from connectors.core.clock import FakeClock

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "splunk_app" / "bin"))
from vtlookup_support.answers import Answers, fingerprint  # noqa: E402


def test_scoped_by_settings_and_type_and_expiring(tmp_path):
    clock = FakeClock(1_800_000_000.0)
    path = str(tmp_path / "a.sqlite")
    stamp = fingerprint("policy", 3)
    kept = Answers(path, stamp, "auto", clock)
    kept.put_many(
        {
            "evil.example": ("malicious", "cols-1", 600.0),
            "brief.example": ("not_found", "cols-2", 60.0),
            "never.example": ("harmless", "cols-3", 0.0),  # 0 s: not kept at all
        }
    )
    wanted = ["evil.example", "brief.example", "never.example", "other.example"]
    assert kept.get_many(wanted) == {
        "evil.example": ("malicious", "cols-1"),
        "brief.example": ("not_found", "cols-2"),
    }
    # Other settings or another type= option never see them (same file, other processes).
    assert Answers(path, fingerprint("policy", 4), "auto", clock).get_many(wanted) == {}
    assert Answers(path, stamp, "domain", clock).get_many(wanted) == {}
    clock.advance(61)
    assert set(kept.get_many(wanted)) == {"evil.example"}
    clock.advance(600)
    assert kept.get_many(wanted) == {}
    kept.close()


def test_answers_that_sqlite_cannot_hold_are_only_not_kept(tmp_path):
    kept = Answers(str(tmp_path / "a.sqlite"), "f", "auto", FakeClock())
    kept.put_many({"ok.example": ("harmless", "cols", 60.0)})
    kept.put_many({"bad.example": ("harmless", "caf\ud800", 60.0)})  # a lone surrogate
    assert kept.get_many(["ok.example", "bad.example"]) == {"ok.example": ("harmless", "cols")}
    kept.close()


def test_many_values_in_one_read(tmp_path):
    kept = Answers(str(tmp_path / "a.sqlite"), "f", "auto", FakeClock())
    values = {f"h{i}.example": ("harmless", f"c{i}", 60.0) for i in range(1234)}
    kept.put_many(values)  # more than one SELECT's worth of keys
    got = kept.get_many(list(values) + ["missing.example"])
    assert len(got) == 1234 and got["h1233.example"] == ("harmless", "c1233")
    kept.close()
