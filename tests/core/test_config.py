import logging
from pathlib import Path

import pytest

from connectors.core import config

ROOT = Path(__file__).resolve().parents[2]


def test_example_file_loads_and_matches_defaults():
    s = config.load(str(ROOT / "examples" / "vtconnect.toml"), env={})
    default = config.from_mapping({}, env={})
    assert s.policy == default.policy
    assert s.cache == default.cache
    assert s.quota.limits() == (4, 500)
    assert s.privacy.internal_suffixes == config.DEFAULT_INTERNAL_SUFFIXES
    assert s.privacy == default.privacy
    assert s.lists == default.lists


def test_env_overrides_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[virustotal]\napi_key = "from-file"\napi_url = "http://127.0.0.1:1/api/v3/"\n')
    s = config.load(str(p), env={})
    assert s.virustotal.api_key.get() == "from-file"
    assert s.virustotal.api_url == "http://127.0.0.1:1"
    s = config.load(str(p), env={"VT_API_KEY": "from-env", "VT_API_URL": "http://127.0.0.1:2"})
    assert s.virustotal.api_key.get() == "from-env"
    assert s.virustotal.api_url == "http://127.0.0.1:2"


def test_config_path_from_environment(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[quota]\ntier = 'premium'\nper_minute = 30\n")
    s = config.load(env={"VTCONNECT_CONFIG": str(p)})
    assert s.quota.limits() == (30, 1_000_000)
    assert s.source == str(p)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[policy]\nmalicious_min = 'three'\n", "policy.malicious_min must be a number"),
        ("[policy]\nnope = 1\n", "unknown key policy.nope"),
        ("[quota]\ntier = 'gold'\n", "quota.tier"),
        ("[cache]\nttl_malicious = -5\n", "must not be negative"),
        ("[privacy]\ninternal_suffixes = 'corp'\n", "list of strings"),
        ("[virustotal]\napi_url = 'ftp://x'\n", "http:// or https://"),
        ("[policy\n", "invalid TOML"),
        ("[core]\nstatedir = 'x'\n", "unknown key core.statedir"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config.load(str(p), env={})


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(str(tmp_path / "nope.toml"), env={})
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe[core]\n")
    with pytest.raises(config.ConfigError):
        config.load(str(p), env={})


def test_api_key_never_shows_in_repr_or_logs(caplog):
    secret = "0123456789abcdef-very-secret-key"
    s = config.from_mapping({}, env={"VT_API_KEY": secret})
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").debug("settings %s %r", s, s.virustotal)
    assert secret not in repr(s) and secret not in str(s.virustotal)
    assert secret not in caplog.text
    assert s.virustotal.api_key.get() == secret


def test_internal_suffixes_normalised():
    s = config.from_mapping({"privacy": {"internal_suffixes": ["Corp", ".ACME.example"]}}, env={})
    assert s.privacy.internal_suffixes == (".corp", ".acme.example")


def test_relationships_flat_or_per_kind_and_unknown_names_refused():
    from connectors.core.relationships import per_collection

    flat = config.from_mapping(
        {"virustotal": {"relationships": ["contacted_domains", "resolutions"]}}, env={}
    ).virustotal.relationships
    assert per_collection(flat) == {
        "files": ("contacted_domains",),
        "urls": ("contacted_domains",),
        "domains": ("resolutions",),
        "ip_addresses": ("resolutions",),
    }
    table = config.from_mapping(
        {"virustotal": {"relationships": {"file": ["dropped_files"], "url": ["redirects_to"]}}},
        env={},
    ).virustotal.relationships
    assert per_collection(table)["files"] == ("dropped_files",)
    assert per_collection(table)["domains"] == ()
    for bad, says in [
        (["contacted_domain"], "'contacted_domain' is not a relationship of any kind"),
        ({"url": ["dropped_files"]}, "'dropped_files' is not a relationship of urls"),
        ({"host": ["resolutions"]}, "unknown kind 'host'"),
        ("contacted_domains", "must be a list"),
        ({"file": "dropped_files"}, "file must be a list"),
    ]:
        with pytest.raises(config.ConfigError, match="virustotal.relationships") as exc:
            config.from_mapping({"virustotal": {"relationships": bad}}, env={})
        assert says in str(exc.value)


def test_database_url_from_file_or_environment(tmp_path):
    assert config.from_mapping({}, env={}).database == ""  # SQLite files in state_dir
    url = "postgresql://vtc:s3cret@db.example:5432/vtconnect"
    s = config.from_mapping({"core": {"database": url}}, env={})
    assert s.database == url
    assert "s3cret" not in repr(s.with_(raw={}))  # the URL may carry a password
    env = {"VTCONNECT_DATABASE": "postgres://other/vtc"}
    assert (
        config.from_mapping({"core": {"database": url}}, env=env).database
        == env["VTCONNECT_DATABASE"]
    )


@pytest.mark.parametrize("value", ["sqlite:///x.db", "/var/lib/vtc.db", 5])
def test_database_must_be_a_postgresql_url(value):
    with pytest.raises(config.ConfigError, match="core.database"):
        config.from_mapping({"core": {"database": value}}, env={})
