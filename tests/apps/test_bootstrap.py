"""`mailbastion init`: a deployment with secure defaults, created once."""

import stat
import subprocess
import sys
from pathlib import Path

from mailbastion.auth.keys import KeyStore
from mailbastion.config import load_settings
from mailbastion.core.address import parse_address
from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import Directory
from mailbastion.directory.recipient_map import RecipientMap


def _mb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbastion", *args], capture_output=True, text=True, timeout=120)


def test_init_creates_a_secure_deployment_once(tmp_path: Path) -> None:
    root = tmp_path / "var"
    res = _mb("init", "--dir", str(root), "--domain", "Example.TEST")
    assert res.returncode == 0, res.stderr
    assert "password (shown once" in res.stdout
    password = res.stdout.split("store it now): ", 1)[1].split()[0]
    settings = load_settings(root / "mailbastion.toml")
    assert settings.smtp.listen == ["127.0.0.1:2525"] and settings.lmtp.listen == "127.0.0.1:2424"
    assert settings.relay.networks == [] and settings.lmtp.require_client_cert
    # keys and the password database are the service's alone
    for name in ("ca.key", "gateway.key", "gateway-client.key", "mda.key"):
        assert stat.S_IMODE((root / "tls" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "directory.db").stat().st_mode) == 0o600
    directory = Directory.from_settings(settings)
    assert directory.list_domains() == ["example.test"]
    assert directory.verify_password("postmaster@example.test", password)
    # the spam filter's report addresses exist and reach the postmaster
    for local in ("report-spam", "report-ham"):
        r = directory.resolve(f"{local}@example.test")
        assert r.kind is ResolutionKind.ALIAS and [str(t) for t in r.targets] == ["postmaster@example.test"]
    # the report addresses that `dns records` publishes exist, and deliver to one reports mailbox
    assert directory.resolve("reports@example.test").kind is ResolutionKind.LOCAL
    gw = RecipientMap(root / "recipient-map.json")  # the gateway's map knows the addresses, and nothing else
    for local in ("dmarc-reports", "tls-reports"):
        for view in (directory, gw):
            r = view.resolve(parse_address(f"{local}@example.test"))
            assert r.kind is ResolutionKind.ALIAS and [str(t) for t in r.targets] == ["reports@example.test"]
    assert gw.resolve(parse_address("postmaster@example.test")).kind is ResolutionKind.LOCAL
    # the domain's DKIM keys exist (pending until published), so `dns records` is complete
    keys = KeyStore(root / "dkim").keys("example.test")
    assert sorted((k.algorithm, k.bits, k.state) for k in keys) == [("ed25519-sha256", 256, "pending"),
                                                                    ("rsa-sha256", 2048, "pending")]
    records = _mb("dns", "records", "-c", str(root / "mailbastion.toml"))
    assert records.returncode == 0 and "no DKIM key yet" not in records.stdout
    for k in keys:
        assert f'{k.selector}._domainkey.example.test.\t3600\tIN\tTXT\t"{k.record[:40]}' in records.stdout
    assert password not in (root / "recipient-map.json").read_text()
    # a second init never overwrites a deployment
    again = _mb("init", "--dir", str(root), "--domain", "example.test")
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert directory.verify_password("postmaster@example.test", password)


def test_init_explains_a_bad_domain(tmp_path: Path) -> None:
    res = _mb("init", "--dir", str(tmp_path / "x"), "--domain", "not a domain")
    assert res.returncode == 1
    assert "invalid domain" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x" / "mailbastion.toml").exists()


def test_cli_usage_error_exits_2() -> None:
    assert _mb("queue", "frobnicate").returncode == 2
