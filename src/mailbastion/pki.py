"""The small private CA that `mailbastion init` makes, and one certificate per role.

The gateway <-> MDA link is authenticated both ways with certificates from this CA; the public
STARTTLS certificate starts self-signed by it too and is replaced by a real one in production.
Keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(cert_path: Path, key_path: Path, *, name: str = "mailbastion internal CA", days: int = 3650) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def issue(
    ca_cert_path: Path,
    ca_key_path: Path,
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str,
    dns_names: list[str] | None = None,
    ips: list[str] | None = None,
    server: bool = True,
    client: bool = False,
    days: int = 825,
) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (dns_names or [common_name])]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips or [])]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def make_deployment_pki(tls_dir: Path, hostname: str) -> dict[str, Path]:
    """CA, public gateway cert, gateway client cert (for LMTP), MDA server cert. Returns the paths."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    p = {n: tls_dir / n for n in ("ca.crt", "ca.key", "gateway.crt", "gateway.key", "gateway-client.crt",
                                  "gateway-client.key", "mda.crt", "mda.key")}
    make_ca(p["ca.crt"], p["ca.key"])
    local = ["localhost"]
    issue(p["ca.crt"], p["ca.key"], p["gateway.crt"], p["gateway.key"], common_name=hostname,
          dns_names=[hostname, *local], ips=["127.0.0.1", "::1"])
    issue(p["ca.crt"], p["ca.key"], p["gateway-client.crt"], p["gateway-client.key"], common_name="gateway",
          dns_names=["gateway"], server=False, client=True)
    issue(p["ca.crt"], p["ca.key"], p["mda.crt"], p["mda.key"], common_name="mda",
          dns_names=["mda", *local], ips=["127.0.0.1", "::1"])
    return p
