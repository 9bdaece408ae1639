"""`mailbastion tls status | renew | import`, run as a user runs them."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tls_testkit import HOSTNAME, issue_dated, make_deployment, mb

from mailbastion.cli.tls import ROLES
from mailbastion.pki import load_chain, load_key, read_certificate


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_deployment(tmp_path / "var")


def serial(path: Path) -> int:
    return load_chain(path)[0].serial_number


def test_status_lists_every_certificate_and_exits_1_inside_the_window(config: Path) -> None:
    res = mb("tls", "status", "-c", str(config))
    assert res.returncode == 0, res.stderr
    for role in ("ca", "gateway", "gateway-client", "mda"):
        assert any(line.startswith(f"{role} ") and " ok " in line for line in res.stdout.splitlines()), role
    assert "364 days left" in res.stdout and f"CN={HOSTNAME}, issued by CN=mailbastion internal CA" in res.stdout
    res = mb("tls", "status", "-c", str(config), "--warn-days", "400")
    assert res.returncode == 1 and "gateway, gateway-client, mda" in res.stderr and "expiring" in res.stdout


def test_status_fails_on_missing_broken_or_expired(config: Path) -> None:
    tls = config.parent / "tls"
    issue_dated(tls, tls / "gateway.crt", tls / "gateway.key", days_from=-30, days_to=-2)
    (tls / "mda.key").unlink()
    (tls / "gateway-client.crt").unlink()
    res = mb("tls", "status", "-c", str(config))
    assert res.returncode == 1
    states = {line.split()[0]: line.split()[1] for line in res.stdout.splitlines() if not line.startswith(" ")}
    assert states == {"ca": "ok", "gateway": "EXPIRED", "gateway-client": "missing", "mda": "broken",
                      "gateway-link": "ok", "internal-client": "ok"}
    assert mb("tls", "status", "-c", str(config), "--role", "ca").returncode == 0  # a DMZ-style subset


def test_renew_reissues_with_new_keys_0600_and_keeps_names(config: Path) -> None:
    tls = config.parent / "tls"
    before = {n: serial(tls / f"{n}.crt") for n in ("gateway", "gateway-client", "mda")}
    old_key = load_key(tls / "gateway.key").public_key()
    res = mb("tls", "renew", "-c", str(config), "--days", "90")
    assert res.returncode == 0, res.stderr
    for name, old in before.items():
        assert serial(tls / f"{name}.crt") != old
        assert stat.S_IMODE((tls / f"{name}.key").stat().st_mode) == 0o600
        assert read_certificate(tls / f"{name}.crt").days_left() in (89, 90)
    assert load_key(tls / "gateway.key").public_key() != old_key
    assert read_certificate(tls / "gateway.crt").names == (HOSTNAME, "localhost", "127.0.0.1", "::1")
    assert "SIGHUP" in res.stdout
    # --expiring: nothing is inside the window now...
    res = mb("tls", "renew", "-c", str(config), "--expiring")
    assert res.returncode == 0 and res.stdout.count("not renewed") == len(ROLES)
    # ...but a 90-day certificate is inside a 120-day window
    config.write_text(config.read_text() + "\n[tls]\nexpiry_warning_days = 120\n")
    mid = serial(tls / "mda.crt")
    assert mb("tls", "renew", "-c", str(config), "--expiring", "--role", "mda").returncode == 0
    assert serial(tls / "mda.crt") != mid
    assert mb("tls", "renew", "-c", str(config), "--days", "400").returncode == 2  # over Mozilla's limit


def test_renew_new_ca_reissues_everything_from_it(config: Path) -> None:
    tls = config.parent / "tls"
    old_ca = serial(tls / "ca.crt")
    res = mb("tls", "renew", "-c", str(config), "--new-ca")
    assert res.returncode == 0, res.stderr
    assert serial(tls / "ca.crt") != old_ca and res.stdout.count("renewed") == len(ROLES)
    assert mb("tls", "status", "-c", str(config)).returncode == 0


def test_renew_without_the_ca_key_says_where_to_run_it(config: Path) -> None:
    (config.parent / "tls" / "ca.key").unlink()
    res = mb("tls", "renew", "-c", str(config))
    assert res.returncode == 1 and "CA key" in res.stderr and "Traceback" not in res.stderr


# --- import of a public certificate ---------------------------------------------------------------------------


class PublicCa:
    """A stand-in for a public CA: root → intermediate → leaf, as a real issuer sends them."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        root.mkdir(parents=True, exist_ok=True)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca("Test Public Root", self.root_key, self.root_key, None, 1)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._ca("Test Public Intermediate", self.int_key, self.root_key, self.root, 0)
        (root / "root.pem").write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        (root / "intermediate.pem").write_bytes(self.intermediate.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
                 start: dt.datetime, end: dt.datetime) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                               critical=False))

    def _ca(self, cn: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
            issuer: x509.Certificate | None, path_length: int) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (self._builder(name, issuer.subject if issuer else name, key, issuer_key, now - dt.timedelta(days=1),
                              now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    def leaf(self, name: str, *, days_from: int = -1, days_to: int = 90) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), self.intermediate.subject,
                              key, self.int_key, now + dt.timedelta(days=days_from), now + dt.timedelta(days=days_to))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.int_key, hashes.SHA256()))
        cert_path, key_path = self.dir / f"{name}-{days_to}.crt", self.dir / f"{name}-{days_to}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


@pytest.fixture
def public_ca(tmp_path: Path) -> PublicCa:
    return PublicCa(tmp_path / "public-ca")


def imp(config: Path, ca: PublicCa, cert: Path, key: Path, *, chain: bool = True) -> tuple[int, str]:
    args = ["tls", "import", "-c", str(config), "--cert", str(cert), "--key", str(key),
            "--trust", str(ca.dir / "root.pem")]
    res = mb(*args, *(["--chain", str(ca.dir / "intermediate.pem")] if chain else []))
    return res.returncode, res.stdout + res.stderr


def test_import_installs_a_valid_public_certificate_atomically(config: Path, public_ca: PublicCa) -> None:
    cert, key = public_ca.leaf(HOSTNAME)
    rc, out = imp(config, public_ca, cert, key)
    assert rc == 0, out
    tls = config.parent / "tls"
    served = load_chain(tls / "gateway.crt")
    assert [c.subject.rfc4514_string() for c in served] == [f"CN={HOSTNAME}", "CN=Test Public Intermediate"]
    assert load_key(tls / "gateway.key").public_key() == served[0].public_key()
    assert stat.S_IMODE((tls / "gateway.key").stat().st_mode) == 0o600
    # the server would start with it, and renew leaves it alone
    from mailbastion.config import load_settings
    from mailbastion.tls_policy import server_context_from_settings

    server_context_from_settings(load_settings(config))
    res = mb("tls", "renew", "-c", str(config))
    assert res.returncode == 0 and "gateway: issued by CN=Test Public Intermediate" in res.stdout
    assert load_chain(tls / "gateway.crt")[0].serial_number == served[0].serial_number
    status = mb("tls", "status", "-c", str(config))
    assert "issued by CN=Test Public Intermediate" in status.stdout and status.returncode == 0


@pytest.mark.parametrize(("case", "message"), [
    ("other-name", "does not name mail.example.test"),
    ("wrong-key", "does not belong"),
    ("expired", "expired on"),
    ("no-chain", "no trusted chain"),
])
def test_import_refuses_and_leaves_the_old_pair(config: Path, public_ca: PublicCa, case: str, message: str) -> None:
    tls = config.parent / "tls"
    before = (tls / "gateway.crt").read_bytes(), (tls / "gateway.key").read_bytes()
    cert, key = public_ca.leaf("mx.elsewhere.example" if case == "other-name" else HOSTNAME,
                               days_from=-100 if case == "expired" else -1, days_to=-1 if case == "expired" else 90)
    if case == "wrong-key":
        key = tls / "mda.key"
    rc, out = imp(config, public_ca, cert, key, chain=case != "no-chain")
    assert rc == 1 and message in out and "Traceback" not in out, out
    assert ((tls / "gateway.crt").read_bytes(), (tls / "gateway.key").read_bytes()) == before
