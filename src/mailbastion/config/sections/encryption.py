"""Encryption of confidential content: classification, outbound protection, keys, pick-up, at rest.

    [encryption]
    subject_tags = ["[confidential]"]            # a Subject carrying one of these (any case) is confidential
    sensitivity = ["company-confidential"]       # Sensitivity: values (RFC 2156) that mean confidential
    classification_header = "X-Classification"   # a header the site names ("" = none) ...
    classification_values = ["confidential", "secret"]   # ... and its values that mean confidential
    content_rules = ["payment_card"]             # built-in content rules (payment_card: Luhn-checked PANs)
    without_key = "hold"                         # outside recipient without key: hold | pickup | refuse
    sign = "never"                               # S/MIME-sign outbound mail: never | confidential | always
    at_rest = ["alice@example.org", "example.net"]   # mailboxes (or whole domains) stored encrypted

    [encryption.national_id_patterns]            # site patterns (Python regular expressions), by name
    "fr_nir" = '\\b[12]\\d{2}(0[1-9]|1[0-2])\\d{8}\\d{2}\\b'

Secure by default: a confidential message is never sent in clear to the outside (held by default) and
always needs verified TLS; inbound encrypted mail is accepted (the gateway cannot scan it, and says so
with ENCRYPTED_SMIME / ENCRYPTED_PGP) unless `inbound_encrypted` holds or refuses it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section

WithoutKey = Literal["hold", "pickup", "refuse"]
SignPolicy = Literal["never", "confidential", "always"]
CONTENT_RULES = frozenset({"payment_card"})
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 §3.6.8 field-name: printable ASCII but ':'
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _mailbox_or_domain(value: str) -> str:
    """"alice@example.org" or "example.net" (lower case, A-labels); raises ValueError."""
    text = value.strip().lower().rstrip(".")
    local, at, domain = text.rpartition("@")
    if at and not local:
        raise ValueError(f"{value!r}: empty local part")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise ValueError(f"{value!r} is not an address or domain") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(lbl) for lbl in labels):
        raise ValueError(f"{value!r} is not an address or a domain (write alice@example.org or example.org)")
    return f"{local}@{domain}" if at else domain


class EncryptionSection(Section):
    enabled: bool = True  # classify outbound mail and protect confidential messages
    # -- what is confidential ------------------------------------------------------------------------
    subject_tags: list[str] = ["[confidential]"]
    sensitivity: list[str] = ["company-confidential"]  # RFC 2156 Sensitivity values (compared case-blind)
    classification_header: str = ""  # a site-named classification header, e.g. "X-Classification"
    classification_values: list[str] = ["confidential", "secret", "restricted"]
    content_rules: list[str] = ["payment_card"]
    national_id_patterns: dict[str, str] = Field(default_factory=dict)  # name -> regex
    content_scan_bytes: int = Field(1024 * 1024, ge=4096, le=64 * 1024 * 1024)  # text read by content rules
    # -- outbound -------------------------------------------------------------------------------------
    without_key: WithoutKey = "hold"
    sign: SignPolicy = "never"  # our S/MIME CA is not in outsiders' trust stores: signing is opt-in
    prefer: Literal["smime", "openpgp"] = "smime"  # when we hold both for a recipient
    hide_subject: bool = False  # RFC 9788 header protection: the outer Subject becomes "[...]"
    smime_cipher: Literal["aes256-cbc", "aes128-cbc"] = "aes256-cbc"  # RFC 8551 §2.7 (CBC: what clients read)
    # -- keys -----------------------------------------------------------------------------------------
    key_dir: str = "keys"  # below data_dir; on the internal host only (the gateway holds no private keys)
    deployment_key: str = "keys/deployment.key"  # seals private keys at rest (AES-256-GCM); 0600
    smime_key_bits: int = Field(3072, ge=2048, le=8192)
    smime_cert_days: int = Field(730, ge=1, le=3650)
    openpgp_key_days: int = Field(730, ge=0, le=3650)  # 0 = no expiry
    # Trust for S/MIME signatures of inbound mail (certificate collection): the system bundle and these.
    system_ca: bool = True
    extra_ca_files: list[str] = []
    # -- discovery of outsiders' OpenPGP keys ---------------------------------------------------------
    wkd: bool = True  # Web Key Directory (advanced, then direct method), HTTPS with certificate validation
    wkd_timeout: float = Field(10.0, gt=0, le=60)
    wkd_max_bytes: int = Field(256 * 1024, ge=1024, le=4 * 1024 * 1024)
    wkd_ca_file: str = ""  # "" = the system's CAs
    discovery_cache_hours: float = Field(24.0, ge=0)  # a found (or missing) key is looked up again after this
    ldap_url: str = ""  # ldaps://ldap.example.org ; "" = no LDAP source
    ldap_base: str = ""
    ldap_attribute: str = "pgpKey"
    ldap_filter: str = "(mail={address})"
    ldap_timeout: float = Field(10.0, gt=0, le=60)
    # -- secure pick-up -------------------------------------------------------------------------------
    pickup_dir: str = "pickup"  # below data_dir
    pickup_url: str = ""  # link prefix; "" = the portal's address + /pickup/ (the portal serves the page)
    pickup_days: int = Field(14, ge=1, le=90)
    pickup_max_attempts: int = Field(5, ge=1, le=20)  # wrong codes before the message is destroyed
    # -- inbound --------------------------------------------------------------------------------------
    inbound_encrypted: Literal["accept", "hold", "reject"] = "accept"
    # -- at rest --------------------------------------------------------------------------------------
    at_rest: list[str] = []
    at_rest_format: Literal["auto", "smime", "openpgp"] = "auto"  # auto: S/MIME when the user has a certificate

    @field_validator("at_rest")
    @classmethod
    def _at_rest(cls, value: list[str]) -> list[str]:
        return [_mailbox_or_domain(v) for v in value]

    @field_validator("subject_tags", "sensitivity", "classification_values")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        out = [v.strip() for v in value]
        if any(not v for v in out):
            raise ValueError("empty entries are not allowed (they would match every message)")
        return out

    @field_validator("classification_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if value and not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not a header field name")
        return value

    @field_validator("content_rules")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - CONTENT_RULES)
        if unknown:
            raise ValueError(f"unknown content rule(s) {unknown} (known: {sorted(CONTENT_RULES)}; site patterns go "
                             "in [encryption.national_id_patterns])")
        return value

    @field_validator("national_id_patterns")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a regular expression: {exc}") from None
            if compiled.match(""):
                raise ValueError(f"pattern {name!r} matches the empty text (it would match every message)")
        return value

    @field_validator("ldap_url", "pickup_url")
    @classmethod
    def _url(cls, value: str, info: object) -> str:
        name = getattr(info, "field_name", "")
        if value and name == "ldap_url" and not value.startswith(("ldap://", "ldaps://")):
            raise ValueError(f"{value!r} is not an ldap:// or ldaps:// URL")
        if value and name == "pickup_url" and not value.startswith("https://"):
            raise ValueError(f"{value!r}: the pick-up link must be https://")
        return value

    def weakened(self) -> list[str]:
        """Settings weaker than the secure defaults, for the `config.weakened` line at start-up."""
        out = []
        if not self.enabled:
            out.append("encryption.enabled = false (confidential mail is not classified nor protected)")
        if self.inbound_encrypted == "accept":
            pass  # the default: the gateway cannot scan encrypted mail, the workstations' anti-virus does
        if self.ldap_url.startswith("ldap://"):
            out.append("encryption.ldap_url is ldap:// (keys fetched without TLS)")
        return out


__all__ = ["CONTENT_RULES", "EncryptionSection", "SignPolicy", "WithoutKey"]
