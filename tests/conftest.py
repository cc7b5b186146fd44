"""Shared fixtures: a real emulator on an ephemeral loopback port, and settings pointing at it."""

from __future__ import annotations

# Imported up front: when hypothesis is first imported by its plugin at session end, CPython
# 3.11.7 can fail compiling it ("AST constructor recursion depth mismatch").
import hypothesis  # noqa: F401
import pytest

from connectors.core import config
from connectors.emulator.server import EmulatorThread


@pytest.fixture(scope="session")
def emulator_url():
    """One emulator for the session, in its own thread and event loop (default config:
    any key accepted, no quota). Tests that change faults or tiers start their own."""
    emu = EmulatorThread()
    url = emu.start()
    yield url
    emu.stop()


@pytest.fixture
def settings(emulator_url, tmp_path):
    # No local quota: tests about the quota make their own settings.
    doc = {"quota": {"tier": "unlimited"}}
    return config.for_emulator(config.from_mapping(doc, env={}), emulator_url, str(tmp_path))
