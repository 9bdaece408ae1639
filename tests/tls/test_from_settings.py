"""A configured certificate or key that is missing, unreadable or not a pair: the listener must not start."""

from __future__ import annotations

import logging
import shutil
import ssl
from pathlib import Path

import pytest
from tls_testkit import issue_dated, make_deployment

from mailbastion.config import load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.tls_policy import lmtp_client_context_from_settings, server_context_from_settings


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_deployment(tmp_path / "var")


def refused(config: Path, role: str = "public") -> ConfigError:
    settings = load_settings(config)
    with pytest.raises(ConfigError) as err:
        if role == "lmtp-client":
            lmtp_client_context_from_settings(settings)
        else:
            server_context_from_settings(settings, role)  # type: ignore[arg-type]
    assert err.value.file == str(config)  # the configuration file is named...
    return err.value


def test_a_complete_deployment_builds_every_context(config: Path) -> None:
    s = load_settings(config)
    assert server_context_from_settings(s).verify_mode is ssl.CERT_NONE
    assert server_context_from_settings(s, "mda").verify_mode is ssl.CERT_REQUIRED
    client = lmtp_client_context_from_settings(s)
    assert client.check_hostname and client.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize(("role", "name", "key"), [
    ("public", "gateway.crt", "tls.cert"), ("public", "gateway.key", "tls.key"),
    ("mda", "mda.crt", "tls.mda_cert"), ("mda", "mda.key", "tls.mda_key"), ("mda", "ca.crt", "tls.ca"),
    ("lmtp-client", "gateway-client.key", "tls.gateway_client_key"), ("lmtp-client", "ca.crt", "tls.ca"),
])
def test_missing_file_is_refused_with_file_key_and_path(config: Path, role: str, name: str, key: str) -> None:
    path = config.parent / "tls" / name
    path.unlink()
    err = refused(config, role)
    assert err.key == key and str(path) in str(err) and "does not exist" in str(err)  # ...the key, the path


def test_unreadable_file_is_refused(config: Path) -> None:
    path = config.parent / "tls" / "gateway.key"
    path.unlink()
    path.mkdir()  # as root, a mode cannot make a file unreadable; a folder in its place can
    err = refused(config)
    assert err.key == "tls.key" and "cannot read" in str(err)


def test_key_of_another_certificate_is_refused(config: Path) -> None:
    tls = config.parent / "tls"
    shutil.copy(tls / "mda.key", tls / "gateway.key")
    err = refused(config)
    assert err.key == "tls.key" and "does not belong to the public certificate" in str(err)


def test_garbage_is_refused(config: Path) -> None:
    tls = config.parent / "tls"
    (tls / "gateway.crt").write_text("not a certificate\n")
    assert refused(config).key == "tls.cert"
    make_deployment(config.parent.parent / "again")
    shutil.copy(config.parent.parent / "again" / "tls" / "gateway.crt", tls / "gateway.crt")
    (tls / "gateway.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert refused(config).key == "tls.key"


def test_expired_and_expiring_certificates_start_but_say_so(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    tls = config.parent / "tls"
    issue_dated(tls, tls / "gateway.crt", tls / "gateway.key", days_from=-30, days_to=-1)
    with caplog.at_level(logging.WARNING, "mailbastion.tls"):
        server_context_from_settings(load_settings(config))
    assert any(r.levelno == logging.ERROR and "EXPIRED" in r.getMessage() for r in caplog.records)
    caplog.clear()
    issue_dated(tls, tls / "gateway.crt", tls / "gateway.key", days_from=-30, days_to=10)
    with caplog.at_level(logging.WARNING, "mailbastion.tls"):
        server_context_from_settings(load_settings(config))
    assert any("expires in 9 days" in r.getMessage() or "expires in 10 days" in r.getMessage()
               for r in caplog.records)


def test_world_readable_key_is_reported(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    (config.parent / "tls" / "gateway.key").chmod(0o644)
    with caplog.at_level(logging.WARNING, "mailbastion.tls"):
        server_context_from_settings(load_settings(config))
    assert any("readable by every user" in r.getMessage() for r in caplog.records)


def test_weakened_mda_accepts_clients_without_certificate_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_deployment(tmp_path, extra="require_client_cert = false\n")  # appended to [lmtp]
    with caplog.at_level(logging.WARNING, "mailbastion.tls"):
        ctx = server_context_from_settings(load_settings(config), "mda")
    assert ctx.verify_mode is ssl.CERT_OPTIONAL
    assert any("config.weakened lmtp.require_client_cert" in r.getMessage() for r in caplog.records)
