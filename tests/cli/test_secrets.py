"""The commands that make credentials print blocks that paste into vtconnect.toml and work there:
the printed block is loaded by the part's own config loader and the credential is checked by the
part's own verifier. Passwords never come from the command line (visible in `ps`)."""

from __future__ import annotations

import asyncio
import base64
import sys
import time

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from click.testing import CliRunner

from connectors.cli import main
from connectors.webhook import auth as webhook_auth
from connectors.webhook import config as webhook_config
from taxii import config as taxii_config
from taxii.auth import Authenticator

COLLECTION = '[[taxii.collections]]\nid = "5e1f3a2b-9c4d-4e8f-a1b2-c3d4e5f60718"\ntitle = "F"\n'


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_taxii_passwd_block_loads_and_authenticates():
    r = run("taxii", "passwd", "alice", input="s3cret pass\n")
    assert r.exit_code == 0, r.output
    assert "s3cret" not in r.output
    cfg = taxii_config.load(tomllib.loads(r.output + COLLECTION))
    header = "Basic " + base64.b64encode(b"alice:s3cret pass").decode()
    assert asyncio.run(Authenticator(cfg).user(header)) == "alice"


def test_taxii_passwd_takes_no_password_on_the_command_line():
    r = run("taxii", "passwd", "alice", "--password", "visible-in-ps")
    assert r.exit_code == 2 and "No such option" in r.output
    assert run("taxii", "passwd", "alice", input="\n").exit_code == 2  # empty password


def test_taxii_token_block_loads_and_the_token_authenticates():
    r = CliRunner().invoke(main, ["taxii", "token", "firewall"])  # click >= 8.2: stderr apart
    assert r.exit_code == 0, r.output
    token = r.stderr.strip().rsplit(" ", 1)[-1]
    assert token not in r.stdout  # only its hash goes into the configuration
    block = r.stdout
    doc = tomllib.loads(block + '[[taxii.users]]\nname = "firewall"\npassword_hash = "'
                        + taxii_config.hash_password("x", 1000) + '"\n' + COLLECTION)  # fmt: skip
    cfg = taxii_config.load(doc)
    assert asyncio.run(Authenticator(cfg).user(f"Bearer {token}")) == "firewall"


def test_webhook_secret_blocks_load_and_sign():
    r = run("webhook", "secret", "kibana")
    assert r.exit_code == 0, r.output
    cfg = webhook_config.load(tomllib.loads(r.output))
    src = cfg.sources["kibana"]
    assert src.auth == "standard" and src.secret.startswith("whsec_")
    body = b'{"ip": "203.0.113.9"}'
    stamp = int(time.time())
    signature = webhook_auth.sign_standard(src.secret, "msg_1", stamp, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
               "webhook-signature": signature}  # fmt: skip
    webhook_auth.verify("standard", src.secret, headers, body)  # raises when it does not match
    try:
        webhook_auth.verify("standard", src.secret, headers, body + b" ")
        raise AssertionError("a changed body verified")
    except webhook_auth.AuthError:
        pass
    r = run("webhook", "secret", "splunk", "--auth", "url", "--format", "splunk")
    assert r.exit_code == 0, r.output
    src = webhook_config.load(tomllib.loads(r.output)).sources["splunk"]
    assert src.auth == "url" and len(src.secret) >= 32
    assert run("webhook", "secret", "bad name").exit_code == 2
    assert run("webhook", "secret", "x", "--format", "nope").exit_code == 2
