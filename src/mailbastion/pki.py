"""The small private CA that `mailbastion init` makes, one certificate per role, and their renewal.

    make_deployment_pki(tls_dir, hostname)       CA + gateway (public), gateway-client, mda, gateway-link,
                                                 internal-client; paths by file name
    issue(ca.crt, ca.key, x.crt, x.key, common_name=..., server=True)    one leaf from the CA
    reissue(ca.crt, ca.key, x.crt, x.key, ...)   the same names again, a new key, a new lifetime
    read_certificate(path) -> CertificateInfo    subject, issuer, expiry, days left (`tls status`)
    check_public_pair(chain, key, hostname=...)  a public certificate fit for our MX name (`tls import`)

What every certificate made here carries, so that strict RFC 5280 validators (cryptography's, which
sslyze uses; Go's; rustls's webpki) build the chain: a random 159-bit serial (RFC 5280 §4.1.2.2, CA/B
BR 7.1), Subject and Authority Key Identifiers (§4.2.1.1-2), a critical KeyUsage of its role (CA:
keyCertSign+cRLSign; leaves: digitalSignature only, the one an ECDHE handshake with an ECDSA key uses)
and an ExtendedKeyUsage (serverAuth or clientAuth). Keys are EC P-256: the type Mozilla's profiles
name first, accepted by every TLS 1.2+ client (RFC 8446 §9.1 makes secp256r1 mandatory), and small.
Leaves live LEAF_DAYS (Mozilla intermediate: under 366 days); the CA lives CA_DAYS.

Files: keys 0600, certificates 0644, the folder 0700, each replaced atomically (never half-written).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailbastion.core.errors import ConfigError
from mailbastion.private_files import private_dir, write_private, write_public

__all__ = [
    "CA_DAYS",
    "GATEWAY_LINK_NAME",
    "INTERNAL_ROLE_NAME",
    "LEAF_DAYS",
    "MAX_LEAF_DAYS",
    "CertificateInfo",
    "check_public_pair",
    "install_pair",
    "issue",
    "issued_by",
    "key_matches",
    "load_chain",
    "load_key",
    "make_ca",
    "make_deployment_pki",
    "make_link_pki",
    "parse_key",
    "read_certificate",
    "reissue",
    "system_trust_anchors",
]

LEAF_DAYS = 365  # Mozilla intermediate: maximum_certificate_lifespan 366 (sslyze counts whole days)
MAX_LEAF_DAYS = 365
CA_DAYS = 3650
_BACKDATE = dt.timedelta(minutes=5)  # a peer whose clock is a little behind still accepts a fresh certificate

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def make_ca(cert_path: Path, key_path: Path, *, name: str = "mailbastion internal CA", days: int = CA_DAYS) -> None:
    """A self-signed CA that may sign leaves only (pathLen 0). Writes its key (0600) and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailbastion"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    write_public(cert_path, _pem([cert]))


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:  # a CA made before key identifiers were added
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


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
    days: int = LEAF_DAYS,
) -> None:
    """A leaf signed by the CA with a new P-256 key, naming `dns_names` (default: the common name) and `ips`.
    Raises ValueError for a lifetime over MAX_LEAF_DAYS (Mozilla intermediate) or a leaf with no usage."""
    if not 1 <= days <= MAX_LEAF_DAYS:
        raise ValueError(f"a certificate lifetime must be 1 to {MAX_LEAF_DAYS} days (Mozilla intermediate), not {days}")
    if not (server or client):
        raise ValueError("a certificate needs a usage: server, client or both")
    ca_cert = load_chain(ca_cert_path)[0]
    ca_key = load_key(ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (dns_names or [common_name])]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips or [])]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: a reader that sees the new certificate finds its key already there (a reload in between
    # sees a mismatched pair, refuses it and keeps the running one).
    write_private(key_path, _key_pem(key))
    write_public(cert_path, _pem([cert]))


# The names the internal link checks (besides the CA): the gateway's listeners for the internal host (the
# relay of outbound mail, the recipient map push) admit only a client certificate naming INTERNAL_ROLE_NAME,
# and the internal host expects GATEWAY_LINK_NAME on them.
INTERNAL_ROLE_NAME = "internal"
GATEWAY_LINK_NAME = "gateway-link"


def make_deployment_pki(tls_dir: Path, hostname: str) -> dict[str, Path]:
    """CA, public gateway cert, gateway client cert (for LMTP), MDA server cert, the gateway's link cert
    ("gateway-link", serverAuth: its listeners for the internal host) and the internal host's client cert for
    them ("internal", clientAuth). Returns the paths by file name."""
    private_dir(tls_dir)
    p = {n: tls_dir / n for n in ("ca.crt", "ca.key", "gateway.crt", "gateway.key", "gateway-client.crt",
                                  "gateway-client.key", "mda.crt", "mda.key", "gateway-link.crt",
                                  "gateway-link.key", "internal-client.crt", "internal-client.key")}
    make_ca(p["ca.crt"], p["ca.key"], name=f"mailbastion internal CA for {hostname}")
    local = ["localhost"]
    issue(p["ca.crt"], p["ca.key"], p["gateway.crt"], p["gateway.key"], common_name=hostname,
          dns_names=[hostname, *local], ips=["127.0.0.1", "::1"])
    issue(p["ca.crt"], p["ca.key"], p["gateway-client.crt"], p["gateway-client.key"], common_name="gateway",
          dns_names=["gateway"], server=False, client=True)
    issue(p["ca.crt"], p["ca.key"], p["mda.crt"], p["mda.key"], common_name="mda",
          dns_names=["mda", *local], ips=["127.0.0.1", "::1"])
    make_link_pki(p["ca.crt"], p["ca.key"], tls_dir)
    return p


def make_link_pki(ca_cert: Path, ca_key: Path, tls_dir: Path) -> dict[str, Path]:
    """The two certificates of the internal link, from the private CA: `gateway-link` (the gateway's
    listeners for the internal host, name "gateway-link") and `internal-client` (the internal host, name
    "internal"). For deployments made before the link existed: run once where the CA key is."""
    p = {n: tls_dir / n for n in ("gateway-link.crt", "gateway-link.key", "internal-client.crt",
                                  "internal-client.key")}
    issue(ca_cert, ca_key, p["gateway-link.crt"], p["gateway-link.key"], common_name=GATEWAY_LINK_NAME,
          dns_names=[GATEWAY_LINK_NAME, "localhost"], ips=["127.0.0.1", "::1"])
    issue(ca_cert, ca_key, p["internal-client.crt"], p["internal-client.key"], common_name=INTERNAL_ROLE_NAME,
          dns_names=[INTERNAL_ROLE_NAME], server=False, client=True)
    return p


# --- reading ------------------------------------------------------------------------------------------------


def load_chain(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order. Raises ConfigError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate: {exc.strerror}", file=str(path)) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError("not a PEM certificate", file=str(path)) from None
    return certs


def load_key(path: Path) -> PrivateKey:
    """An unencrypted PEM private key (EC or RSA). Raises ConfigError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the private key: {exc.strerror}", file=str(path)) from None
    return parse_key(data, path)


def parse_key(data: bytes, path: Path | str = "<key>") -> PrivateKey:
    """`load_key` for bytes already read (what is checked is then what gets used)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not an unencrypted PEM private key ({exc})", file=str(path)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"a {type(key).__name__} key: use EC P-256/P-384 or RSA >= 2048", file=str(path))
    return key


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when `ca` signed `cert` (its name and its signature, not the name alone)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What `tls status` prints about one certificate file (its first certificate)."""

    path: Path
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[str, ...]
    is_ca: bool
    self_issued: bool

    def days_left(self, now: dt.datetime | None = None) -> int:
        return (self.not_after - (now or _now())).days



def _names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def _common_name(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def read_certificate(path: Path) -> CertificateInfo:
    cert = load_chain(path)[0]
    dns, ips = _names(cert)
    return CertificateInfo(path, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                           cert.not_valid_before_utc, cert.not_valid_after_utc, tuple(dns + ips), _is_ca(cert),
                           cert.issuer == cert.subject)


def reissue(ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path, *, server: bool, client: bool,
            days: int = LEAF_DAYS, default_name: str, add_names: Sequence[str] = ()) -> None:
    """Issue `cert_path` again from the CA with a new key: the names of the certificate it replaces (or
    `default_name` when there is none) plus `add_names`; usages as given. Atomic per file, key first."""
    names: list[str] = []
    ips: list[str] = []
    cn = default_name
    if cert_path.exists():
        old = load_chain(cert_path)[0]
        cn = _common_name(old) or default_name
        names, ips = _names(old)
    for n in add_names:
        try:
            ipaddress.ip_address(n)
        except ValueError:
            names += [] if n in names else [n]
        else:
            ips += [] if n in ips else [n]
    issue(ca_cert_path, ca_key_path, cert_path, key_path, common_name=cn, dns_names=names or [cn], ips=ips,
          server=server, client=client, days=days)


# --- public certificates ------------------------------------------------------------------------------------


def system_trust_anchors() -> list[x509.Certificate]:
    """The operating system's CA bundle, as OpenSSL finds it."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            with warnings.catch_warnings():  # some shipped roots have odd serials; they still anchor
                warnings.simplefilter("ignore")
                return x509.load_pem_x509_certificates(Path(candidate).read_bytes())
    raise ConfigError("no system CA bundle found (install ca-certificates, or pass --trust FILE)")


def check_public_pair(
    chain: Sequence[x509.Certificate],
    key: PrivateKey,
    *,
    hostname: str,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> list[x509.Certificate]:
    """Check that `chain` (leaf first, then intermediates in any order) is fit to serve as `hostname`:
    the key matches, it is valid now, a path builds to one of `anchors` under RFC 5280 / CA/B rules, and it
    names `hostname`. Returns the chain to serve (leaf, intermediates, no root). Raises ConfigError."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    if not chain:
        raise ConfigError("no certificate in the file")
    leaf, now = chain[0], now or _now()
    if not key_matches(leaf, key):
        raise ConfigError("the private key does not belong to the certificate")
    if leaf.not_valid_after_utc <= now:
        raise ConfigError(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        raise ConfigError(f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    public = leaf.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise ConfigError(f"an RSA key of {public.key_size} bits: Mozilla intermediate wants 2048 or more")
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name not in ("secp256r1", "secp384r1"):
        raise ConfigError(f"an EC key on {public.curve.name}: Mozilla intermediate wants P-256 or P-384")
    verifier = PolicyBuilder().store(Store(list(anchors))).time(now).build_server_verifier(x509.DNSName(hostname))
    try:
        built = verifier.verify(leaf, list(chain[1:]))
    except VerificationError as exc:
        dns, ips = _names(leaf)
        if hostname not in dns and not any(n.startswith("*.") and hostname.split(".", 1)[-1] == n[2:] for n in dns):
            raise ConfigError(f"the certificate does not name {hostname} (it names {', '.join(dns + ips) or 'nothing'})"
                              ) from None
        raise ConfigError(f"no trusted chain builds for it: {exc}") from None
    return [c for c in built if c.issuer != c.subject or c is leaf]


def install_pair(chain: Sequence[x509.Certificate], key: PrivateKey, cert_path: Path, key_path: Path) -> None:
    """Write the key (0600) then the chain (0644), each replaced atomically."""
    write_private(key_path, _key_pem(key))
    write_public(cert_path, _pem(chain))
