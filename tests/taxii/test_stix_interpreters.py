"""The STIX mapping lives in connectors.core, which runs inside Splunk's Python 3.9: the same
enrichments must give byte-identical objects (same deterministic ids) there and here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY39 = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions/3.9.18/bin/python3.9"
SCRIPT = r"""
import json
from connectors.core import stix
from connectors.core.verdict import Enrichment, Verdict
values = [("domain", "a.example.com"), ("url", "http://x.example.com/it's"),
          ("ipv6", "2001:db8::1"),
          ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
items = [Enrichment(value=v, kind=k, verdict=Verdict.MALICIOUS, score=70, normalized=v, link="l")
         for k, v in values]
b = stix.bundle_for(items, tlp="amber", now=1767225600.123456)
b["id"] = "bundle--x"
print(json.dumps(b, sort_keys=True))
"""


def run(python: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONNOUSERSITE="1")
    out = subprocess.run([python, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=60, cwd="/")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_mapping_is_identical_on_python_3_9():
    if not PY39.exists():
        pytest.skip(f"Python 3.9 is not installed at {PY39}")
    import sys

    here, there = run(sys.executable), run(str(PY39))
    assert here == there
    assert [o["type"] for o in here["objects"]].count("indicator") == 4
