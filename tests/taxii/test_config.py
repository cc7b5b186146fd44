from pathlib import Path

import pytest

from connectors.core import config
from connectors.core.config import ConfigError
from taxii import config as taxii_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_configuration_loads():
    raw = config.load(str(ROOT / "examples" / "vtconnect.toml"), env={}).raw
    cfg = taxii_config.load(raw)
    assert cfg.collections[0].publish == ("malicious", "suspicious")
    assert cfg.max_page_size == 1000 and cfg.tlp == "green"


@pytest.mark.parametrize("section, message", [
    ({"collections": [{"id": "not-a-uuid", "title": "x"}]}, "UUIDv4"),
    ({"collections": [{"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "title": "x"}]}, "UUIDv4"),
    ({"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t"},
                      {"id": "2a1b0c9d-8e7f-4a5b-9c8d-7e6f5a4b3c2d", "title": "t"}]}, "unique"),
    ({"users": [{"name": "bob", "password_hash": "plaintext"}]}, "taxii passwd"),
    ({"tokens": [{"sha256": "abc", "user": "bob"}]}, "sha256"),
    ({"tlp": "purple"}, "taxii.tlp"),
    ({"max_page_size": 0}, "positive"),
    ({"api_root": "a/b"}, "api_root"),
    ({"api_root": "feeds"}, "taken"),
    ({"colections": []}, "unknown key taxii.colections \\(did you mean 'collections'\\?\\)"),
    ({"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t",
                       "readers": ["x"]}]},
     "unknown key taxii.collections\\[0\\].readers \\(did you mean 'read'\\?\\)"),
    ({"users": {"name": "x"}}, "list of tables"),
    ({"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t",
                       "kinds": ["hash"]}]}, "unknown kind"),
    ({"sources": [{"type": "rss", "collection": "x"}]}, "sources\\[0\\].type"),
    ({"sources": [{"type": "search", "collection": "x"}]}, "query is required"),
    ({"sources": [{"type": "livehunt", "collection": "nope"}]}, "must name"),
    ({"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t",
                       "publish": ["evil"]}]}, "publish: 'evil'"),
    ({"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t"}],
      "sources": [{"type": "livehunt", "verdicts": ["bad"],
                   "collection": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5"}]}, "verdicts: 'bad'"),
    ({"public_url": "taxii.example.org"}, "public_url"),
])  # fmt: skip
def test_bad_sections_are_clear_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        taxii_config.load({"taxii": section})


def test_password_hashes_verify():
    h = taxii_config.hash_password("pw", 1000)
    assert taxii_config.verify_password("pw", h)
    assert not taxii_config.verify_password("pW", h)
    assert not taxii_config.verify_password("pw", "garbage")


def test_rights_must_name_known_users():
    from taxii.config import hash_password

    doc = {"collections": [{"id": "1f0e8c6a-5b4d-4e3f-a2b1-c0d9e8f7a6b5", "title": "t",
                            "read": ["firewal"], "write": ["*"]}],
           "users": [{"name": "firewall", "password_hash": hash_password("x", 1000)}]}  # fmt: skip
    with pytest.raises(ConfigError, match="read: no user 'firewal'.*did you mean 'firewall'"):
        taxii_config.load({"taxii": doc})
    doc["collections"][0]["read"] = ["firewall", "soc"]
    doc["tokens"] = [{"sha256": "a" * 64, "user": "soc"}]  # a token-only user is a user
    assert taxii_config.load({"taxii": doc}).collections[0].readers == ("firewall", "soc")


def test_example_feed_block_shows_the_defaults():
    """The commented [[taxii.feeds]] block in the example loads and says the defaults."""
    import tomllib

    from taxii.feed_options import FeedOptions, apply

    text = (ROOT / "examples" / "vtconnect.toml").read_text()
    block = text[text.index("# [[taxii.feeds]]") :].split("\n\n")[0]
    lines = [x[2:] for x in block.splitlines() if x.startswith("# ")]
    table = tomllib.loads("\n".join(lines))["taxii"]["feeds"][0]
    options = {k: v for k, v in table.items() if k not in ("name", "collection", "format", "kind")}
    documented = apply(FeedOptions(), options)
    assert documented == FeedOptions()
    assert taxii_config.load(
        {"taxii": {"collections": [{"id": table["collection"], "title": "t"}], "feeds": [table]}}
    ).feeds
