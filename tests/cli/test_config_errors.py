"""Configuration mistakes are one line naming the key, with the closest known name, and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Misspelt sections used to be ignored: `[[webhook.source]]` gave a receiver with no sources that
# answered 404 to every alert. Each is now one line naming the key, with the closest known name,
# and exit 2, from every command that reads the configuration.
MISSPELT = [
    ("[polcy]\nmalicious_min = 2\n", "unknown section polcy (did you mean 'policy'?)"),
    ("[taxi]\nport = 1\n", "unknown section taxi (did you mean 'taxii'?)"),
    ("[webhooks]\nport = 1\n", "unknown section webhooks (did you mean 'webhook'?)"),
    ('[[webhook.source]]\nname = "k"\n', "unknown key webhook.source (did you mean 'sources'?)"),
    ("[quota]\nteir = 'premium'\n", "unknown key quota.teir (did you mean 'tier'?)"),
]


@pytest.mark.parametrize("text, message", MISSPELT)
def test_misspelt_sections_and_keys_are_errors_with_a_suggestion(tmp_path, text, message):
    cfg = tmp_path / "vtconnect.toml"
    cfg.write_text(text)
    exe = str(Path(sys.executable).with_name("vtconnect"))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path), VT_API_URL="http://127.0.0.1:9")
    # (serve validating everything before it binds is tested with the servers)
    cmd = ["webhook", "dead"] if "webhook." in text else ["cache", "stats"]
    r = subprocess.run([exe, "--config", str(cfg), *cmd], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_config_option_after_the_sub_command(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quota]\ntier = 'premium'\nper_minute = 77\n")
    exe = str(Path(sys.executable).with_name("vtconnect"))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    env.pop("VTCONNECT_CONFIG", None)
    for args in (["--config", str(cfg), "quota"], ["quota", "--config", str(cfg)],
                 ["quota", f"--config={cfg}", "-v"]):  # fmt: skip
        r = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and "tier premium" in r.stdout, (args, r.stderr)
    r = subprocess.run([exe, "quota", "--config"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "'--config' requires an argument" in r.stderr
