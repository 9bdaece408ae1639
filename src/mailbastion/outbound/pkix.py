"""PKIX checks of an MX certificate chain after the handshake: a trusted CA, the MX host name, the dates.

    trust = TrustStore.from_file(ca_file)            # or TrustStore.system()
    failure = verify_pkix(chain, "mx.example.org", trust)   # None, or (RFC 8460 result type, detail)

The chain is verified by `cryptography`'s X.509 verifier (RFC 5280 path building, RFC 6125 name matching:
SAN dNSName, a wildcard only as the whole left-most label). A failure is classified for TLS-RPT as
certificate-expired, certificate-host-mismatch or certificate-not-trusted (RFC 8460 §4.3.2.1).

`names_match` is the same RFC 6125 rule on its own, for DANE-TA chains (RFC 7672 §3.2.3), which need the
name but not a public CA.
"""

from __future__ import annotations

import datetime as dt
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

CERT_EXPIRED = "certificate-expired"
CERT_HOST_MISMATCH = "certificate-host-mismatch"
CERT_NOT_TRUSTED = "certificate-not-trusted"


@dataclass(frozen=True, slots=True)
class TrustStore:
    """CA certificates trusted for MTA-STS and `verify` (a site's bundle, or the system's)."""

    anchors: tuple[x509.Certificate, ...]
    origin: str

    @staticmethod
    def from_file(path: Path | str) -> TrustStore:
        """Raises OSError / ValueError (no PEM certificate in the file)."""
        try:
            certs = _load_pem(Path(path).read_bytes())
        except ValueError:
            certs = []
        if not certs:
            raise ValueError(f"{path} holds no PEM certificate")
        return TrustStore(tuple(certs), str(path))

    @staticmethod
    def system() -> TrustStore:
        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile):
            if candidate and Path(candidate).is_file():
                return TrustStore(tuple(_load_pem(Path(candidate).read_bytes())), candidate)
        raise OSError("no system CA bundle found (install ca-certificates, or set [outbound] ca_file)")

    def store(self) -> Store:
        return Store(list(self.anchors))


def _load_pem(data: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():  # a few shipped roots have odd encodings; they still anchor
        warnings.simplefilter("ignore")
        return x509.load_pem_x509_certificates(data)


def dns_names(cert: x509.Certificate) -> list[str]:
    """The names a certificate is for: SAN dNSNames, else the subject CN (RFC 6125 §6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        if names:
            return names
    except x509.ExtensionNotFound:
        pass
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _name_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    # RFC 6125 §6.4.3: a wildcard is the complete left-most label and matches exactly one label.
    if pattern.startswith("*.") and "*" not in pattern[2:] and "." in name:
        return name.split(".", 1)[1] == pattern[2:] and pattern[2:].count(".") >= 1
    return False


def names_match(cert: x509.Certificate, references: tuple[str, ...] | list[str]) -> bool:
    return any(_name_matches(p, r) for p in dns_names(cert) for r in references)


def _in_date(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def verify_pkix(chain: list[x509.Certificate], names: tuple[str, ...], trust: TrustStore,
                now: dt.datetime | None = None) -> tuple[str, str] | None:
    """None when the chain (leaf first, as the server sent it) leads to a trusted CA and the leaf names one of
    `names`; else (result type, detail). Never raises for a bad certificate."""
    now = now or dt.datetime.now(dt.UTC)
    if not chain:
        return CERT_NOT_TRUSTED, "the server sent no certificate"
    leaf, intermediates = chain[0], chain[1:]
    last_error = ""
    for name in names:
        try:
            verifier = PolicyBuilder().store(trust.store()).time(now).build_server_verifier(DNSName(name))
            verifier.verify(leaf, intermediates)
            return None
        except (VerificationError, ValueError) as exc:
            last_error = str(exc)
    subject = leaf.subject.rfc4514_string()
    if not _in_date(leaf, now) or any(not _in_date(c, now) for c in intermediates):
        return CERT_EXPIRED, f"certificate {subject} is outside its validity period"
    if not names_match(leaf, names):
        held = ", ".join(dns_names(leaf)) or "nothing"
        return CERT_HOST_MISMATCH, f"certificate names {held}, not {', '.join(names)}"
    return CERT_NOT_TRUSTED, f"certificate {subject} not trusted ({trust.origin}): {last_error}"


__all__ = ["CERT_EXPIRED", "CERT_HOST_MISMATCH", "CERT_NOT_TRUSTED", "TrustStore", "dns_names", "names_match",
           "verify_pkix"]
