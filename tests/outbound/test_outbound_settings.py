"""[outbound] settings: secure defaults, clear refusals, a `config show` round trip, and the facade built
from them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.config import load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound import OutboundTls, TlsMode

SITE = """\
[server]
hostname = "mx.ours.test"
[outbound]
dnssec_resolver = "127.0.0.1:5353"
mta_sts_fetch_timeout = 12.5
tls_rpt_organization = "Ours"
[outbound.tls_policy]
"Partner.Example." = "verify"
".legacy.example" = "may"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbastion.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_secure_ones() -> None:
    from mailbastion.config import Settings

    o = Settings().outbound
    assert (o.dnssec_resolver, o.mta_sts, o.tls_rpt, o.tls_policy) == ("", True, True, {})
    assert o.weakened() == []


def test_site_settings_load_normalised_and_round_trip(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE))
    assert settings.outbound.tls_policy == {"partner.example": "verify", ".legacy.example": "may"}
    shown = CliRunner().invoke(main_group, ["config", "show", "--no-marks", "-c", str(tmp_path / "mailbastion.toml")])
    assert shown.exit_code == 0, shown.output
    (tmp_path / "again").mkdir()
    again = load_settings(write(tmp_path / "again", shown.output))
    assert again.outbound == settings.outbound
    assert tomllib.loads(shown.output)["outbound"]["tls_policy"]["partner.example"] == "verify"


@pytest.mark.parametrize(("text", "message"), [
    ('[outbound]\ndnssec_resolver = "192.0.2.53"\n', "not on this host"),
    ('[outbound]\ndnssec_resolver = "resolver.example"\n', r"ADDRESS\[:PORT\]"),
    ('[outbound.tls_policy]\n"partner.example" = "strict"\n', "tls_policy"),
    ('[outbound.tls_policy]\n"not a domain" = "verify"\n', "not a domain name"),
    ('[outbound]\nunknown_key = 1\n', "unknown_key"),
])
def test_refused_at_load_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_weakened_settings_are_named() -> None:
    from mailbastion.config import Settings

    s = Settings.model_validate({"outbound": {"mta_sts": False, "tls_policy": {"old.example": "none"}}})
    assert len(s.outbound.weakened()) == 2


async def test_facade_from_settings(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE))
    tls = OutboundTls.from_settings(settings, DnsResolver(["127.0.0.1"], port=9, timeout=0.5))
    assert tls.resolver.dnssec is not None and (tls.resolver.dnssec.address, tls.resolver.dnssec.port) == (
        "127.0.0.1", 5353)
    assert tls.resolver.local["partner.example"] is TlsMode.VERIFY and tls.reports is not None
    assert (tmp_path / "tlsrpt.db").exists()
    broken = SITE.replace('[outbound]\n', '[outbound]\nca_file = "missing-ca.pem"\n')
    with pytest.raises(ConfigError, match="outbound.ca_file"):
        OutboundTls.from_settings(load_settings(write(tmp_path, broken)), DnsResolver(["127.0.0.1"], port=9))
