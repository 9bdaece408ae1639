from pathlib import Path

import pytest

from mailbastion.config import effective, load_settings
from mailbastion.core.errors import ConfigError


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[smtp]\nmax_recipients = 10\nopen_relay = true\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(cfg) in str(err.value) and "smtp.open_relay" in str(err.value)
    assert str(err.value).count("smtp.open_relay") == 1  # said once, not repeated as a prefix
    assert err.value.key == "smtp.open_relay" and err.value.file == str(cfg)


def test_bad_value_says_what_is_allowed(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[tls]\nmin_version = "TLSv1.0"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "tls.min_version" in str(err.value) and "TLSv1.2" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_paths_are_relative_to_config_and_secrets_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[server]\ndata_dir = "."\n')
    s = load_settings(cfg)
    assert s.path("spool") == tmp_path / "spool"
    assert s.directory_url == f"sqlite:///{tmp_path}/directory.db"
    assert effective(s)["relay"]["networks"] == []


def test_secure_defaults() -> None:
    from mailbastion.config import Settings

    s = Settings()
    assert s.relay.networks == []
    assert s.lmtp.require_client_cert is True
    assert s.smtp.xclient_hosts == [] and s.smtp.proxy_protocol is False
    assert s.tls.min_version == "TLSv1.2"
