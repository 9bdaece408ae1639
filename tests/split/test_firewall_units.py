"""`mailbastion firewall` and `mailbastion units`: the text each writes from a configuration, checked by the
tools that will read it (nft in a throwaway network namespace, systemd-analyze)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailbastion.config import Settings, parse_settings
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.firewall import ruleset
from mailbastion.deploy.units import render

GATEWAY = {"server": {"role": "gateway", "hostname": "mx.example.org"},
           "smtp": {"listen": ["0.0.0.0:25"], "implicit_tls_listen": ["192.0.2.10:465"]},
           "lmtp": {"connect": "10.77.0.2:2424"}, "map_push": {"listen": "10.77.0.1:2426"},
           "dns": {"nameservers": ["10.77.0.53"]}, "firewall": {"admin_from": ["192.0.2.0/28"]}}
INTERNAL = {"server": {"role": "internal"}, "lmtp": {"listen": "10.77.0.2:2424"},
            "map_push": {"gateways": ["10.77.0.1:2426", "10.77.0.9:2426"]},
            "metrics": {"listen": "127.0.0.1:9325"}, "firewall": {"ssh_port": 0}}


def _settings(data: dict[str, object], tmp_path: Path) -> Settings:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text("# placeholder: the unit names this file\n")
    return parse_settings(data, cfg)  # type: ignore[arg-type]


def _rules(text: str, chain: str) -> list[str]:
    lines = text.split(f"chain {chain} {{", 1)[1].splitlines()
    return [line.strip() for line in lines[: [ln.strip() for ln in lines].index("}")] if line.strip()]


def test_the_gateway_lets_in_the_mx_and_the_push_and_opens_only_lmtp_inward(tmp_path: Path) -> None:
    text = ruleset(_settings(GATEWAY, tmp_path)).render()
    inp, out = _rules(text, "input"), _rules(text, "output")
    assert inp[0] == "type filter hook input priority filter; policy drop;"
    assert 'tcp dport 25 accept comment "MX, from anywhere (smtp.listen)"' in inp
    assert any(r.startswith("ip daddr 192.0.2.10 tcp dport 465 accept") for r in inp)
    assert any(r.startswith("ip saddr 10.77.0.2 ip daddr 10.77.0.1 tcp dport 2426 accept") for r in inp)
    assert not any("2426" in r and "saddr" not in r for r in inp)  # the push port from the internal host only
    assert any(r.startswith("ip saddr 192.0.2.0/28 tcp dport 22 accept") for r in inp)
    lmtp = out.index(next(r for r in out if r.startswith("ip daddr 10.77.0.2 tcp dport 2424 accept")))
    block = out.index(next(r for r in out if r.startswith("ip daddr 10.77.0.2 counter drop")))
    smtp_out = out.index(next(r for r in out if r.startswith("tcp dport 25 accept")))
    assert lmtp < block < smtp_out  # nothing else towards the internal host, even on port 25
    assert any(r.startswith("ip daddr 10.77.0.53 udp dport 53 accept") for r in out)
    assert inp[-1].startswith("counter drop") and out[-1].startswith("counter drop")
    assert "chain forward" in text and text.startswith("#!/usr/sbin/nft -f")


def test_the_internal_host_lets_in_lmtp_from_its_gateways_only_and_opens_only_the_push(tmp_path: Path) -> None:
    text = ruleset(_settings(INTERNAL, tmp_path)).render()
    inp, out = _rules(text, "input"), _rules(text, "output")
    lmtp = [r for r in inp if "dport 2424" in r]
    assert [r.split(" accept")[0] for r in lmtp] == ["ip saddr 10.77.0.1 ip daddr 10.77.0.2 tcp dport 2424",
                                                     "ip saddr 10.77.0.9 ip daddr 10.77.0.2 tcp dport 2424"]
    assert not any("dport 25 " in r for r in inp + out)  # no MX in, no SMTP out
    assert not any("dport 22 " in r for r in inp)  # firewall.ssh_port = 0
    assert not any("9325" in r for r in inp)  # metrics on loopback need no rule
    assert [r.split(" accept")[0] for r in out if "2426" in r] == ["ip daddr 10.77.0.1 tcp dport 2426",
                                                                   "ip daddr 10.77.0.9 tcp dport 2426"]


def test_a_role_the_file_is_not_for_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot describe the internal's firewall"):
        ruleset(_settings(GATEWAY, tmp_path), "internal")


@pytest.mark.parametrize("data", [GATEWAY, INTERNAL, {}])
def test_nft_accepts_the_rules(data: dict[str, object], tmp_path: Path) -> None:
    if shutil.which("nft") is None or shutil.which("ip") is None or not _root():
        pytest.skip("nft and root needed (a throwaway network namespace)")
    rules = tmp_path / "rules.nft"
    rules.write_text(ruleset(_settings(data, tmp_path), "all" if not data else None).render())
    ns = f"mbnftcheck{id(data) % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for _ in range(2):  # loading twice replaces the table (the file deletes it first)
            res = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(rules)], check=False, capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
        listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], check=False, capture_output=True, text=True)
        assert listed.stdout.split() == ["table", "inet", "mailbastion"]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _root() -> bool:
    import os

    return os.geteuid() == 0


def test_the_gateways_unit_binds_25_with_one_capability_and_nothing_else(tmp_path: Path) -> None:
    unit = render(_settings(GATEWAY, tmp_path), python="/usr/bin/python3")
    text = unit.text
    assert unit.name == "mailbastion-gateway.service"
    assert f"ExecStart=/usr/bin/python3 -m mailbastion serve -c {tmp_path / 'mailbastion.toml'} --role gateway" in text
    for line in ("User=mailbastion", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 f"ReadWritePaths={tmp_path}", "PrivateTmp=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service", "SystemCallFilter=capset", "ProtectHome=yes", "UMask=0077"):
        assert line in text.splitlines(), line
    assert "PrivateUsers=yes" not in text  # a user namespace could not bind port 25
    assert "IPAddressDeny" not in text  # the MX talks to the whole Internet


def test_the_internal_unit_has_no_capability_and_talks_to_its_gateways_only(tmp_path: Path) -> None:
    text = render(_settings(INTERNAL, tmp_path), python="/usr/bin/python3").text.splitlines()
    assert "AmbientCapabilities=" in text and "CapabilityBoundingSet=" in text and "PrivateUsers=yes" in text
    assert "SystemCallFilter=capset" not in text
    assert "IPAddressDeny=any" in text and "IPAddressAllow=localhost 10.77.0.1/32 10.77.0.9/32" in text


def test_implicit_tls_user_listeners_are_opened_and_may_bind_low_ports(tmp_path: Path) -> None:
    # Submission on 465 and IMAP on 993 (their listen_tls keys) are user services like 587 and 143.
    data = {**INTERNAL, "firewall": {"ssh_port": 0, "clients": ["192.0.2.0/24"]},
            "submission": {"listen": ["10.77.0.2:587"], "listen_tls": ["10.77.0.2:465"]},
            "imap": {"listen": ["10.77.0.2:143"], "listen_tls": ["10.77.0.2:993"]}}
    rules = _rules(ruleset(_settings(data, tmp_path)).render(), "input")
    for port, key in ((587, "submission.listen"), (465, "submission.listen_tls"), (143, "imap.listen"),
                      (993, "imap.listen_tls")):
        assert any(f"tcp dport {port} accept" in r and f"({key})" in r and "192.0.2.0/24" in r for r in rules), port
    text = render(_settings(data, tmp_path), python="/usr/bin/python3").text.splitlines()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
    assert any(line.startswith("# Ports below 1024:") and "465" in line and "993" in line for line in text)


def test_a_unit_never_runs_as_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unprivileged user"):
        render(_settings({**GATEWAY, "server": {**GATEWAY["server"], "user": "root"}}, tmp_path))  # type: ignore[dict-item]


def test_units_cli_writes_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text('[server]\nrole = "internal"\n[lmtp]\nlisten = "10.77.0.2:2424"\n[map_push]\n'
                   'gateways = ["10.77.0.1:2426"]\n')
    res = subprocess.run([sys.executable, "-m", "mailbastion", "units", "-c", str(cfg), "--out", str(tmp_path / "u")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "u" / "mailbastion-internal.service").read_text().startswith("# Generated by `mailbastion units`")


@pytest.mark.parametrize(("data", "limit"), [(GATEWAY, 2.0), (INTERNAL, 1.5)])
def test_systemd_analyze_scores_the_units_low(data: dict[str, object], limit: float, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    unit = render(_settings(data, tmp_path), python="/usr/bin/python3")
    path = tmp_path / unit.name
    path.write_text(unit.text)
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path.name],
                         check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout)
    assert found, res.stdout[-2000:] + res.stderr
    assert float(found.group(1)) <= limit, res.stdout
