"""`mailbastion dns records|check` and `dkim keygen|rotate|status` against a real DNS server on loopback.

The rotation flow end to end: keygen shows a record, `dns check` sees it missing, we publish exactly
what `dns records` printed, `dns check` confirms it and switches signing, a rotation adds a second
selector, and the old record's removal date is shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailbastion.auth.keys import KeyStore
from mailbastion.cli import main_group
from mailbastion.testing.dns_server import DnsTestServer

DOMAIN = "example.org"
MX = "mx.example.org"


@pytest.fixture
def setup(tmp_path: Path, dns_server: DnsTestServer) -> tuple[Path, DnsTestServer]:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text(
        f'[server]\nhostname = "{MX}"\ndata_dir = "."\n'
        f'[dns]\nnameservers = ["{dns_server.host}"]\nport = {dns_server.port}\ntimeout = 0.5\n',
        encoding="utf-8")
    dns_server.add(MX, "A", "192.0.2.25")
    (tmp_path / "recipient-map.json").write_text(json.dumps({"domains": [DOMAIN], "addresses": []}))  # ours
    return cfg, dns_server


def run(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(main_group, [*args[:2], "-c", str(cfg), *args[2:]], catch_exceptions=False)


def publish(server: DnsTestServer, zone_text: str, only: str | None = None) -> None:
    for line in zone_text.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        name, _ttl, _in, rtype, value = line.split("\t", 4)
        if only is None or only in name:
            server.remove(name.rstrip("."), rtype)
            server.add(name.rstrip("."), rtype, value)


def test_rotation_flow(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, server = setup
    out = run(cfg, "dkim", "keygen", DOMAIN)
    assert out.exit_code == 0, out.output
    selectors = re.findall(r"selector (\S+) \(pending\)", out.output)
    assert len(selectors) == 2 and "._domainkey.example.org. IN TXT" in out.output

    check = run(cfg, "dns", "check", DOMAIN)
    assert check.exit_code == 1
    for purpose in ("mx", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt"):
        assert re.search(rf"MISSING {re.escape(purpose)}\b", check.output), (purpose, check.output)

    records = run(cfg, "dns", "records", DOMAIN)
    assert records.exit_code == 0
    text = records.output
    assert f"{DOMAIN}.\t3600\tIN\tMX\t10 {MX}." in text
    assert '"v=spf1 mx -all"' in text and "p=none; rua=mailto:dmarc-reports@example.org" in text
    assert "_mta-sts.example.org." in text and "v=TLSRPTv1" in text and "mode: testing" in text
    assert "p=reject" in text  # the path from p=none to p=reject is explained
    publish(server, text)

    check = run(cfg, "dns", "check", DOMAIN)
    assert check.exit_code == 0, check.output
    assert check.output.count("signing switched to") == 2
    store = KeyStore(cfg.parent / "dkim")
    assert sorted(k.selector for k in store.active(DOMAIN)) == sorted(selectors)

    rotated = run(cfg, "dkim", "rotate", DOMAIN, "--algorithm", "rsa")
    new = re.findall(r"selector (\S+) \(pending\)", rotated.output)
    assert len(new) == 1 and new[0] not in selectors and "keep signing until then" in rotated.output
    check = run(cfg, "dns", "check", DOMAIN)
    assert check.exit_code == 1 and "is not published" in check.output  # the new key is not live yet
    assert new[0] not in [k.selector for k in store.active(DOMAIN)]
    publish(server, run(cfg, "dns", "records", DOMAIN).output, only=new[0])
    check = run(cfg, "dns", "check", DOMAIN)
    assert check.exit_code == 0, check.output
    assert f"signing switched to {new[0]}" in check.output
    assert re.search(r"remove mb\S+r\._domainkey\.example\.org after \d{4}-\d\d-\d\d", check.output)
    status = run(cfg, "dkim", "status", DOMAIN)
    assert "retired remove record after" in status.output


def test_records_for_every_domain_of_the_recipient_map(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, _ = setup
    (cfg.parent / "recipient-map.json").write_text(json.dumps({"domains": ["a.test", "b.test"], "addresses": []}))
    out = run(cfg, "dns", "records")
    assert out.exit_code == 0
    assert "_dmarc.a.test." in out.output and "_dmarc.b.test." in out.output


def test_records_without_domain_or_map_fails_clearly(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, _ = setup
    (cfg.parent / "recipient-map.json").unlink()
    out = CliRunner().invoke(main_group, ["dns", "records", "-c", str(cfg)])
    assert out.exit_code == 1 and "no recipient map" in out.output


def test_records_refuses_a_domain_we_do_not_host(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, _ = setup
    out = CliRunner().invoke(main_group, ["dns", "records", "-c", str(cfg), "example.net"])
    assert out.exit_code == 1
    assert out.output == "mailbastion: example.net is not one of our domains (see `mailbastion domain list`)\n"
    out = CliRunner().invoke(main_group, ["dns", "records", "-c", str(cfg), "Example.ORG."])
    assert out.exit_code == 0 and "_dmarc.example.org." in out.output  # ours, however it is written


@pytest.mark.parametrize("bad", ["exa mple.org", "../etc", "org", "a..b.org", "[192.0.2.1]", "x-.example"])
def test_keygen_refuses_a_malformed_domain(setup: tuple[Path, DnsTestServer], bad: str) -> None:
    cfg, _ = setup
    out = CliRunner().invoke(main_group, ["dkim", "keygen", "-c", str(cfg), bad])
    assert out.exit_code == 1 and out.output.startswith("mailbastion: invalid domain") and out.output.count("\n") == 1
    assert not (cfg.parent / "dkim").exists() or not any((cfg.parent / "dkim").iterdir())


def test_weak_and_wrong_records(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, server = setup
    server.add(DOMAIN, "MX", f"10 {MX}")
    server.add(DOMAIN, "TXT", "v=spf1 +all")
    server.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=none")
    out = run(cfg, "dns", "check", DOMAIN)
    assert "WRONG   spf      'v=spf1 +all': +all authorizes every host" in out.output
    assert "WEAK    dmarc    no rua" in out.output
    assert "note    dmarc    p=none (monitoring) since" in out.output


def test_activate_by_hand(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, server = setup
    out = run(cfg, "dkim", "keygen", DOMAIN, "--algorithm", "ed25519")
    selector = re.findall(r"selector (\S+) \(pending\)", out.output)[0]
    refused = CliRunner().invoke(main_group, ["dkim", "activate", "-c", str(cfg), DOMAIN, selector])
    assert refused.exit_code == 1 and "does not hold this key yet" in refused.output
    publish(server, run(cfg, "dns", "records", DOMAIN).output, only=selector)
    done = run(cfg, "dkim", "activate", DOMAIN, selector)
    assert done.exit_code == 0 and f"signing for {DOMAIN} with {selector}" in done.output
    assert [k.selector for k in KeyStore(cfg.parent / "dkim").active(DOMAIN)] == [selector]


def test_the_mta_sts_record_follows_the_mode_the_portal_serves(setup: tuple[Path, DnsTestServer]) -> None:
    cfg, _ = setup
    testing = run(cfg, "dns", "records", DOMAIN).output
    cfg.write_text(cfg.read_text() + '[portal]\nmta_sts_mode = "enforce"\n', encoding="utf-8")
    enforce = run(cfg, "dns", "records", DOMAIN).output
    assert "mode: enforce" in enforce and "mode: testing" not in enforce
    ids = [re.findall(r'"v=STSv1; id=(\w+)"', text) for text in (testing, enforce)]
    assert ids[0] and ids[1] and ids[0] != ids[1]  # a new policy, a new id: senders fetch it again
