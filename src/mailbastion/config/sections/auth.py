"""Sender authentication (SPF, DKIM, DMARC, ARC) and DKIM signing. Owned by the sender-authentication issue.

    [auth]
    authserv_id = "mx.example.org"          # our name in Authentication-Results (RFC 8601 §2.5); default: server.hostname
    trusted_arc_sealers = ["lists.example.net"]  # ARC sealers whose chain may override a DMARC failure (RFC 8617 §7.2)
    dmarc_quarantine = "junk"               # what p=quarantine means here: "junk" folder or our "quarantine"
    dkim_keys_dir = "dkim"                  # below data_dir; private keys 0600 in 0700 folders, never in this file
    signing_domains = ["example.org"]       # our domains that submission signs (empty: every domain with a key)

    [auth.lookalike]                        # look-alike and homograph domains (policy/checks/lookalike.py)
    partner_domains = ["supplier.example"]  # the site's partners: their look-alikes are flagged like ours
    impersonated_domains = ["mybank.example"]  # added to the shipped list of frequently impersonated domains
    action = "junk"                         # what a look-alike gets: "junk", "quarantine", or "score" (symbols only)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section


def _domain(value: str) -> str:
    """A domain name as the look-alike lists hold it: lower case, A-labels, no final dot."""
    d = value.strip().lower().rstrip(".")
    try:
        ascii_form = d.encode("idna").decode("ascii") if not d.isascii() else d
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain name") from None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(re.fullmatch(r"(?!-)[a-z0-9-]{1,63}(?<!-)", lbl) for lbl in labels):
        raise ValueError(f"{value!r} is not a domain name (write it as example.org)")
    return ascii_form


class LookalikeSection(Section):
    """Look-alike domains of ours, of the site's partners and of frequently impersonated ones (TR39)."""

    enabled: bool = True
    partner_domains: list[str] = []  # the site's partners (banks, suppliers, customers) whose look-alikes are flagged
    impersonated_domains: list[str] = []  # added to the shipped spam/data/impersonated_domains.txt
    shipped_list: bool = True  # False: only our domains and partner/impersonated_domains are protected
    action: Literal["junk", "quarantine", "score"] = "junk"  # "score": symbols only, weighed in lookalike.toml
    max_link_domains: int = Field(30, ge=0, le=200)  # link hosts looked at per message (CPU bound)

    @field_validator("partner_domains", "impersonated_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        return [_domain(v) for v in values]


class AuthSection(Section):
    enabled: bool = True
    authserv_id: str | None = None  # None: server.hostname
    trusted_arc_sealers: list[str] = []  # domains (ARC-Seal d=) trusted to vouch for forwarded mail
    dmarc_quarantine: Literal["junk", "quarantine"] = "junk"
    dmarc_enforce: bool = True  # False: DMARC results become symbols only (never forced); logged as weakened
    dmarc_tempfail_on_reject_policy: bool = True  # RFC 7489 §6.6.2: a DNS error on a p=reject domain gives 451
    spf_timeout: float = Field(15.0, gt=0, le=60)  # whole SPF evaluation (RFC 7208 §4.6.4: at least 20 s total)
    dkim_timeout: float = Field(10.0, gt=0, le=60)
    max_dkim_signatures: int = Field(5, ge=1, le=50)  # more are reported but not verified (DoS bound)
    min_rsa_bits: int = Field(1024, ge=512)  # RFC 8301 §3.2: verifiers must not accept keys under 1024 bits
    dkim_keys_dir: str = "dkim"  # below data_dir
    signing_domains: list[str] = []  # empty: every domain that has an active key
    sign_algorithms: list[Literal["rsa-sha256", "ed25519-sha256"]] = ["rsa-sha256", "ed25519-sha256"]
    rsa_bits: int = Field(2048, ge=2048, le=4096)  # keys we make (RFC 8301 §3.2 recommends at least 2048)
    retired_key_days: int = Field(7, ge=1, le=365)  # how long an old selector's record stays published
    dmarc_none_max_days: int = Field(60, ge=1)  # `dns check` calls p=none weak after this long
    report_address: str | None = None  # rua/ruf mailbox for `dns records`; default dmarc-reports@DOMAIN
    lookalike: LookalikeSection = Field(default_factory=LookalikeSection)


def weakened(auth: AuthSection) -> list[str]:
    """Auth settings weaker than the secure defaults, for the `config.weakened` line at start-up."""
    out = []
    if auth.enabled and not auth.dmarc_enforce:
        out.append("auth.dmarc_enforce = false (DMARC p=reject/quarantine become symbols only)")
    if auth.enabled and not auth.dmarc_tempfail_on_reject_policy:
        out.append("auth.dmarc_tempfail_on_reject_policy = false (DNS trouble lets p=reject mail through)")
    if auth.min_rsa_bits < 1024:
        out.append(f"auth.min_rsa_bits = {auth.min_rsa_bits} (RFC 8301 §3.2: at least 1024)")
    look = auth.lookalike
    if auth.enabled and not look.enabled:
        out.append("auth.lookalike.enabled = false (homographs of our, partner and brand domains are not flagged)")
    elif auth.enabled and look.action == "score":
        out.append('auth.lookalike.action = "score" (look-alike domains are no longer sent to Junk by themselves)')
    if auth.enabled and look.enabled and not look.shipped_list:
        out.append("auth.lookalike.shipped_list = false (look-alikes of frequently impersonated domains pass)")
    if auth.trusted_arc_sealers:
        out.append(f"auth.trusted_arc_sealers = {auth.trusted_arc_sealers} (may override DMARC failures)")
    return out
