"""What the TLS of one outbound SMTP session must be: values, no I/O.

    TlsMode            none < may < encrypt < verify < dane   (Postfix's smtp_tls_security_level names)
    PolicySource       where a requirement came from: dane | mta-sts | local | requiretls | opportunistic
    Tlsa               one TLSA record (RFC 6698 §2.1), with RFC 7672 §3.1.3's usability rule
    ReportPolicy       the "policy" object of an RFC 8460 report for the session
    TlsRefusal         why a host (or the whole domain) may not be used now: a status and a text
    TlsRequirement     one MX host's requirement: mode, what to verify (names, TLSA), where it came from
    DomainTlsPolicy    every host's requirement for one destination domain, in the order given

A refusal is temporary unless it says otherwise: a policy failure defers the message, it never falls back
to clear text. Permanent refusals are REQUIRETLS's (RFC 8689 §5: 5.7.10, 5.7.30).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class TlsMode(StrEnum):
    NONE = "none"  # no STARTTLS even when offered (a site's choice for a broken peer)
    MAY = "may"  # opportunistic: STARTTLS when offered, certificate not checked, clear text if it fails
    ENCRYPT = "encrypt"  # TLS required, certificate not checked (RFC 7672 §2.2: TLSA present, none usable)
    VERIFY = "verify"  # TLS required, certificate chain to a trusted CA naming the MX host (PKIX)
    DANE = "dane"  # TLS required, certificate matching a DNSSEC-validated TLSA record (RFC 7672)

    @property
    def strength(self) -> int:
        return _STRENGTH[self]

    @property
    def needs_tls(self) -> bool:
        return self.strength >= _STRENGTH[TlsMode.ENCRYPT]

    @property
    def verifies(self) -> bool:
        return self in (TlsMode.VERIFY, TlsMode.DANE)


_STRENGTH = {TlsMode.NONE: 0, TlsMode.MAY: 1, TlsMode.ENCRYPT: 2, TlsMode.VERIFY: 3, TlsMode.DANE: 4}


class PolicySource(StrEnum):
    DANE = "dane"
    MTA_STS = "mta-sts"
    LOCAL = "local"  # [outbound.tls_policy]
    REQUIRETLS = "requiretls"  # the message asked for it (RFC 8689)
    OPPORTUNISTIC = "opportunistic"


# RFC 6698 §2.1.1-3 and RFC 7672 §3.1.3: the usages an SMTP client uses, and the selectors/matching types.
DANE_TA, DANE_EE = 2, 3
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MATCH_FULL, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1.3: SMTP clients use DANE-TA(2) and DANE-EE(3) only; PKIX-TA(0)/PKIX-EE(1) and
        unknown selectors or matching types are unusable. A digest of the wrong length is unusable too."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (SELECTOR_CERT, SELECTOR_SPKI):
            return False
        length = {MATCH_FULL: None, MATCH_SHA256: 32, MATCH_SHA512: 64}
        if self.mtype not in length:
            return False
        want = length[self.mtype]
        return bool(self.data) and (want is None or len(self.data) == want)

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    @staticmethod
    def parse(text: str) -> Tlsa:
        """`3 1 1 ab12...` (presentation form; the hex may hold spaces). Raises ValueError."""
        parts = text.split()
        if len(parts) < 4:
            raise ValueError(f"not a TLSA record: {text!r}")
        return Tlsa(int(parts[0]), int(parts[1]), int(parts[2]), bytes.fromhex("".join(parts[3:])))


@dataclass(frozen=True, slots=True)
class ReportPolicy:
    """RFC 8460 §4.4 "policy": what the session was judged against (for the TLS-RPT report)."""

    policy_type: str  # "tlsa" | "sts" | "no-policy-found"
    policy_domain: str
    policy_string: tuple[str, ...] = ()  # TLSA records, or the MTA-STS policy's lines
    mx_host: tuple[str, ...] = ()  # the MTA-STS policy's mx patterns

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"policy-type": self.policy_type, "policy-domain": self.policy_domain}
        if self.policy_string:
            out["policy-string"] = list(self.policy_string)
        if self.mx_host:
            out["mx-host"] = list(self.mx_host)
        return out


@dataclass(frozen=True, slots=True)
class TlsRefusal:
    """Why delivery may not go on (to this host, or to the domain). `status` is an RFC 3463 code."""

    status: str  # "4.7.5"
    text: str
    result_type: str | None = None  # RFC 8460 §4.3 result type, when the failure is reportable
    permanent: bool = False

    def __str__(self) -> str:
        return f"{self.status} {self.text}"


@dataclass(frozen=True, slots=True)
class TlsRequirement:
    """The TLS one SMTP session to `host` must have.

    `mode` says how much TLS; `names` are the reference identifiers a PKIX certificate (and a DANE-TA
    chain's leaf) must match; `tlsa` the usable records a DANE session must match; `report_only` marks an
    MTA-STS policy in testing mode (failures are reported, delivery goes on, RFC 8461 §5); `requiretls` a
    message that asked for REQUIRETLS (the server must advertise it, RFC 8689 §4.2.1). When `refusal` is
    set the host must not be used now (e.g. its TLSA lookup failed on a signed zone)."""

    domain: str
    host: str
    mode: TlsMode
    source: PolicySource
    names: tuple[str, ...] = ()
    tlsa: tuple[Tlsa, ...] = ()
    report_only: bool = False
    requiretls: bool = False
    refusal: TlsRefusal | None = None
    report: ReportPolicy | None = None
    notes: tuple[str, ...] = field(default=())  # weaker policies that were overridden, for the log
    # A reportable failure of the policy itself that did not stop delivery (an MTA-STS policy that could
    # not be fetched): the session is reported as that failure (RFC 8460 §4.3.2.2).
    policy_failure: tuple[str, str] | None = None  # (result type, detail)

    @property
    def enforced(self) -> bool:
        """Must the session fail when TLS cannot be had or the peer cannot be verified?"""
        return self.mode.needs_tls and not self.report_only

    @property
    def wants_tls(self) -> bool:
        """Is STARTTLS attempted at all?"""
        return self.mode is not TlsMode.NONE

    @property
    def checks_peer(self) -> bool:
        """Is the certificate checked (enforced, or in testing mode reported)?"""
        return self.mode.verifies

    def describe(self) -> str:
        text = f"{self.mode.value} ({self.source.value}{', testing' if self.report_only else ''})"
        return text + (", REQUIRETLS" if self.requiretls else "")


@dataclass(frozen=True, slots=True)
class DomainTlsPolicy:
    """Every MX host's requirement for `domain`. `refusal` set: no host may be used now."""

    domain: str
    hosts: tuple[TlsRequirement, ...] = ()
    refusal: TlsRefusal | None = None

    def for_host(self, host: str) -> TlsRequirement:
        """The requirement of `host`. A host the policy was not built for is refused (fail closed): its
        DANE records, for one, were never looked up."""
        key = host.lower().rstrip(".")
        for req in self.hosts:
            if req.host == key:
                return req if self.refusal is None else replace(req, refusal=self.refusal)
        return TlsRequirement(self.domain, key, TlsMode.DANE, PolicySource.LOCAL,
                              refusal=self.refusal or TlsRefusal("4.7.5", f"no TLS policy was resolved for {key}"))


__all__ = ["DANE_EE", "DANE_TA", "DomainTlsPolicy", "PolicySource", "ReportPolicy", "TlsMode", "TlsRefusal",
           "TlsRequirement", "Tlsa"]
