"""Sender authentication end to end: `mailbastion serve` as a child process, real SMTP over loopback,
DNS from a loopback server. Spoofed mail is refused at end of DATA; genuine mail arrives with our
Authentication-Results on top and a forged one gone; p=quarantine lands in Junk."""

from __future__ import annotations

import smtplib
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from authkit import message, rsa_key

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, dns: DnsTestServer) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("auth-deployment")
    d = Deployment(root, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"'})
    d.init()
    d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
    # The loopback client is "the partner's server"; bank.test's servers are elsewhere.
    dns.add("partner.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.add("_dmarc.partner.test", "TXT", "v=DMARC1; p=reject")
    dns.add("bank.test", "TXT", "v=spf1 ip4:192.0.2.25 -all")
    dns.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    dns.add("shop.test", "TXT", "v=spf1 ip4:192.0.2.26 -all")
    dns.add("_dmarc.shop.test", "TXT", "v=DMARC1; p=quarantine")
    d.start()
    yield d
    d.stop()


def _authserv_id(d: Deployment) -> str:
    cfg = tomllib.loads(d.config.read_text())
    return str(cfg.get("auth", {}).get("authserv_id") or cfg["server"]["hostname"])


def test_spoofed_reject_domain_is_refused_at_data(deployment: Deployment) -> None:
    with pytest.raises(smtplib.SMTPDataError) as err:
        deployment.send("security@bank.test", ["alice@example.test"],
                        message("Bank <security@bank.test>", to="alice@example.test"))
    assert err.value.smtp_code == 550 and b"5.7.1" in err.value.smtp_error and b"DMARC" in err.value.smtp_error


def test_ambiguous_from_is_refused(deployment: Deployment) -> None:
    raw = message("a@partner.test", to="alice@example.test").replace(
        b"From: a@partner.test\r\n", b"From: a@partner.test\r\nFrom: ceo@bank.test\r\n")
    with pytest.raises(smtplib.SMTPDataError) as err:
        deployment.send("a@partner.test", ["alice@example.test"], raw)
    assert err.value.smtp_code == 550


def test_genuine_mail_carries_our_results_and_not_a_forged_one(deployment: Deployment, dns: DnsTestServer) -> None:
    ours = _authserv_id(deployment)
    key = rsa_key("partner.test", "p1")
    dns.add("p1._domainkey.partner.test", "TXT", key.record)
    forged = f"Authentication-Results: {ours}; dmarc=pass header.from=bank.test\r\n".encode()
    raw = forged + key.sign(message("Carol <carol@partner.test>", to="alice@example.test", subject="genuine"))
    before = len(deployment.delivered("alice@example.test"))
    assert deployment.send("carol@partner.test", ["alice@example.test"], raw) == {}
    got = deployment.wait_delivered("alice@example.test", before + 1)[-1].decode()
    head = got.split("\r\n\r\n", 1)[0] if "\r\n\r\n" in got else got.split("\n\n", 1)[0]
    results = [ln for ln in head.splitlines() if ln.lower().startswith("authentication-results")]
    assert len(results) == 1, head
    assert results[0].startswith(f"Authentication-Results: {ours}; spf=pass")
    assert "dkim=pass header.d=partner.test" in results[0] and "dmarc=pass" in results[0]
    assert "header.from=bank.test" not in head


def test_quarantine_policy_goes_to_junk(deployment: Deployment) -> None:
    before = len(deployment.delivered("alice@example.test", "Junk"))
    assert deployment.send("news@shop.test", ["alice@example.test"],
                           message("Shop <news@shop.test>", to="alice@example.test", subject="deal")) == {}
    deployment.wait_delivered("alice@example.test", before + 1, folder="Junk")
