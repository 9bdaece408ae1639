"""The DNS records one of our domains must publish for mail: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, and
DANE's TLSA for our MX (RFC 7672).

    recs = records_for("example.org", mx_host="mx.example.org", keys=store.published("example.org"),
                       mx_certificates=load_mx_certificate(settings.path(settings.tls.cert)))
    print(render(recs))          # zone-file lines with a comment on each
    print(DMARC_PATH)            # how to go from p=none to p=reject

Pure functions: nothing here looks DNS up (`check.py` does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailbastion.auth.keys import KeyInfo


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str  # owner name, without the final dot
    rtype: str  # "MX" | "TXT" | "CNAME" ...
    value: str  # for TXT: the text, unquoted
    purpose: str  # "mx" | "spf" | "dkim" | "dmarc" | "mta-sts" | "tls-rpt" | "dane"
    note: str = ""

    def zone_line(self, ttl: int = 3600) -> str:
        value = self.value
        if self.rtype == "TXT":
            # RFC 1035 §3.3.14: one character-string holds at most 255 octets; long keys are split.
            chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
            value = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
        return f"{self.name}.\t{ttl}\tIN\t{self.rtype}\t{value}"


DMARC_PATH = """\
DMARC, step by step (RFC 7489 §6.6; M3AAWG DMARC deployment):
  1. p=none with rua reports (published now). Read the aggregate reports for 2 to 4 weeks; make every
     service that sends as the domain (newsletters, ticketing, invoicing) pass SPF or DKIM aligned.
  2. p=quarantine; pct=25, then pct=100, once the reports show only your own sources failing nothing.
  3. p=reject. `mailbastion dns check` calls p=none weak once it has been in place too long."""


def mta_sts_policy(mx_hosts: Sequence[str], *, mode: str = "testing", max_age: int = 604800) -> str:
    """The policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.2)."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {h}" for h in mx_hosts), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def mta_sts_id(policy: str) -> str:
    """RFC 8461 §3.1: id changes whenever the policy changes; a digest of the policy does exactly that."""
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


def tlsa_311(cert: x509.Certificate) -> str:
    """`3 1 1 <sha256 of the public key>`: DANE-EE, the key (not the certificate), so that renewing the
    certificate with the same key keeps the record valid (RFC 7671 §5.1, RFC 7672 §3.1.1)."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"3 1 1 {hashlib.sha256(spki).hexdigest()}"


def load_mx_certificate(path: Path) -> list[x509.Certificate]:
    """The leaf of our public certificate file ([tls] cert), or [] when it cannot be read (the records
    are then printed without TLSA, with a note)."""
    try:
        chain = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []
    return chain[:1]


def spf_value(mechanisms: Iterable[str] = ("mx",), *, all_qualifier: str = "-") -> str:
    """`v=spf1 mx -all`: only our MX hosts send for the domain, everything else fails (RFC 7208 §5.1)."""
    return " ".join(["v=spf1", *mechanisms, f"{all_qualifier}all"])


def dmarc_value(domain: str, *, report_address: str | None = None, policy: str = "none") -> str:
    rua = report_address or f"dmarc-reports@{domain}"
    return f"v=DMARC1; p={policy}; rua=mailto:{rua}; fo=1"


def records_for(domain: str, *, mx_host: str, keys: Iterable[KeyInfo] = (), report_address: str | None = None,
                spf_mechanisms: Iterable[str] = ("mx",), mta_sts_mode: str = "testing",
                mx_certificates: Iterable[x509.Certificate] = ()) -> list[DnsRecord]:
    """Every record to publish for `domain`, in the order an administrator adds them. `mx_certificates`:
    our MX's certificate (and a next one during a key rollover): one TLSA record per distinct key."""
    domain = domain.lower().rstrip(".")
    mx_host = mx_host.lower().rstrip(".")
    policy = mta_sts_policy([mx_host], mode=mta_sts_mode)
    tls_rua = report_address or f"tls-reports@{domain}"
    out = [
        DnsRecord(domain, "MX", f"10 {mx_host}.", "mx", "mail for the domain goes to our gateway"),
        DnsRecord(domain, "TXT", spf_value(spf_mechanisms), "spf",
                  "SPF: only the MX hosts send; add ip4:/include: for every other legitimate sender"),
    ]
    for key in keys:
        when = {"pending": "new key: publish, then `mailbastion dns check` switches signing to it",
                "active": "signing key",
                "retired": f"old key: remove after {key.remove_after}"}.get(key.state, key.state)
        out.append(DnsRecord(key.record_name, "TXT", key.record, "dkim", f"DKIM {key.algorithm}, {when}"))
    out += [
        DnsRecord(f"_dmarc.{domain}", "TXT", dmarc_value(domain, report_address=report_address), "dmarc",
                  "DMARC: start at p=none with reports (see the path below)"),
        DnsRecord(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={mta_sts_id(policy)}", "mta-sts",
                  f"MTA-STS (RFC 8461): serve the policy below at https://mta-sts.{domain}/.well-known/mta-sts.txt"),
        DnsRecord(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:{tls_rua}", "tls-rpt",
                  "TLS-RPT (RFC 8460): daily reports of TLS failures sending to us"),
    ]
    seen: set[str] = set()
    for cert in mx_certificates:
        value = tlsa_311(cert)
        if value in seen:
            continue
        note = ("DANE (RFC 7672), only in a DNSSEC-signed zone: senders that validate DNSSEC require our MX to "
                "present this key" if not seen else "DANE: the next key (publish it before the rollover)")
        seen.add(value)
        out.append(DnsRecord(f"_25._tcp.{mx_host}", "TLSA", value, "dane", note))
    return out


def render(records: Sequence[DnsRecord], *, domain: str, mx_host: str, mta_sts_mode: str = "testing") -> str:
    """Zone-file lines with comments, the MTA-STS policy file, and the DMARC path."""
    lines = [f"; records for {domain} (generated by mailbastion)"]
    for rec in records:
        lines.append(f"; {rec.purpose}: {rec.note}" if rec.note else f"; {rec.purpose}")
        lines.append(rec.zone_line())
    if any(r.purpose == "dane" for r in records):
        lines += ["; DANE key rollover: `tls renew` and `tls import` bring a new key; publish its TLSA record next",
                  "; to this one, wait two TTLs, then switch the certificate and remove the old record."]
    else:
        lines += ["; dane: no TLSA record for our MX (our certificate was not given or could not be read:",
                  "; `mailbastion tls status`)"]
    lines += ["", f"; https://mta-sts.{domain}/.well-known/mta-sts.txt (start in testing, then mode: enforce;",
              f"; mta-sts.{domain} needs an address record and a certificate from a public CA, RFC 8461 §3.3;",
              f"; change the id of _mta-sts.{domain} whenever the policy changes):"]
    lines += ["; " + ln for ln in mta_sts_policy([mx_host], mode=mta_sts_mode).splitlines()]
    lines += ["", *("; " + ln for ln in DMARC_PATH.splitlines())]
    return "\n".join(lines)


__all__ = ["DMARC_PATH", "DnsRecord", "dmarc_value", "load_mx_certificate", "mta_sts_id", "mta_sts_policy",
           "records_for", "render", "spf_value", "tlsa_311"]
