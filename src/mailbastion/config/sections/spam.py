"""The spam and phishing filter: classifier, rules, DNS blocklists, rate limits, greylisting, the external
tag and the report addresses. Owned by the spam-filter issue. Weights live in config/scores/spam.toml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mailbastion.config.sections.base import Section

ClientListSymbol = Literal["RBL_SPAMHAUS_ZEN", "RBL_SPAMCOP", "RBL_LISTED"]
DomainListSymbol = Literal["URIBL_SPAMHAUS_DBL", "URIBL_SURBL", "URIBL_LISTED"]


# The classifier's probability falls in one band, each a symbol weighed in config/scores/spam.toml (the
# `bayes` group is capped below Junk: the classifier alone never moves mail to Junk). The shipped model is
# poorly calibrated on mail unlike its 2002 corpus (short business mail scored 0.68), hence the wide bands.
DEFAULT_SPAM_PROBABILITY = 0.8
# The top band starts at 0.99 (SpamAssassin's BAYES_99): by 5-fold cross-validation on the SpamAssassin corpus
# no ham scored 0.99 or more, while commercial newsletters reached 0.95-0.987 (docs/notes-spamq.md).


class ClassifierSection(Section):
    enabled: bool = True
    model_path: str = "spam/model.joblib"  # the site model (below data_dir); the shipped default until then
    low_probability: float = Field(0.5, ge=0.5, lt=1.0)  # BAYES_SPAM_LOW from here
    spam_probability: float = Field(DEFAULT_SPAM_PROBABILITY, ge=0.5, lt=1.0)  # BAYES_SPAM from here
    high_probability: float = Field(0.99, ge=0.5, lt=1.0)  # BAYES_SPAM_HIGH from here
    ham_probability: float = Field(0.1, gt=0.0, lt=0.5)  # BAYES_HAM at or below

    @model_validator(mode="after")
    def _bands_rise(self) -> ClassifierSection:
        if not self.low_probability <= self.spam_probability <= self.high_probability:
            raise ValueError("low_probability <= spam_probability <= high_probability is required")
        return self


class RulesSection(Section):
    enabled: bool = True
    date_past_hours: float = Field(96.0, gt=0)  # DATE_IN_PAST beyond this (SpamAssassin: 96 h)
    date_future_hours: float = Field(12.0, gt=0)  # DATE_IN_FUTURE beyond this
    extra_domains: list[str] = []  # more domains to guard against look-alikes (brands, parent company)


class ClientList(Section):
    zone: str
    symbol: ClientListSymbol = "RBL_LISTED"
    answers: list[str] = []  # A records that count (empty: any 127.0.0.0/8 except 127.255.255.0/24)


class DomainList(Section):
    zone: str
    symbol: DomainListSymbol = "URIBL_LISTED"
    answers: list[str] = []


class DnsblSection(Section):
    enabled: bool = True
    # Spamhaus is free for low-volume non-commercial use through your own resolver only; sites set their own.
    client_lists: list[ClientList] = [ClientList(zone="zen.spamhaus.org", symbol="RBL_SPAMHAUS_ZEN")]
    domain_lists: list[DomainList] = [DomainList(zone="dbl.spamhaus.org", symbol="URIBL_SPAMHAUS_DBL")]
    timeout: float = Field(2.0, gt=0, le=30)  # per lookup; a timeout fails open with DNSBL_UNREACHABLE
    max_domains: int = Field(10, ge=0, le=100)  # URL domains looked up per message
    reject_listed_clients: bool = False  # refuse at CONNECT (Forced 554) instead of scoring


class RateLimitSection(Section):
    enabled: bool = True
    backend: Literal["auto", "memory", "sqlite"] = "auto"  # auto: sqlite when server.workers > 1
    path: str = "spam/ratelimit.db"
    # Generous by default: a limit exists to stop floods, and must not defer a busy partner's or a
    # notification service's ordinary mail to a whole organisation (an hour holds many messages).
    per_client: int = Field(5000, ge=1)  # messages per window from one outside client address
    per_sender: int = Field(2000, ge=1)  # messages per window from one sender (SASL identity, else MAIL FROM)
    window_seconds: float = Field(3600.0, gt=0)


class GreylistSection(Section):
    enabled: bool = False  # delays first mail from every new sender; a site opts in
    backend: Literal["memory", "sqlite"] = "sqlite"
    path: str = "spam/greylist.db"
    delay_seconds: float = Field(300.0, ge=0)
    retry_window_seconds: float = Field(4 * 3600.0, gt=0)
    pass_ttl_seconds: float = Field(36 * 86400.0, gt=0)


class ExternalTagSection(Section):
    mode: Literal["off", "subject", "header"] = "off"  # mark mail from outside our organisation
    subject_tag: str = "[EXTERNAL]"
    header_value: str = "This message comes from outside the organisation."


class ReportSection(Section):
    enabled: bool = True
    spam_local_part: str = "report-spam"  # report-spam@<each of our domains>
    ham_local_part: str = "report-ham"
    trusted_symbols: list[str] = ["DMARC_POLICY_ALLOW"]  # a report from our own domain needs one of these


class SpamSection(Section):
    enabled: bool = True
    classifier: ClassifierSection = Field(default_factory=ClassifierSection)
    rules: RulesSection = Field(default_factory=RulesSection)
    dnsbl: DnsblSection = Field(default_factory=DnsblSection)
    ratelimit: RateLimitSection = Field(default_factory=RateLimitSection)
    greylist: GreylistSection = Field(default_factory=GreylistSection)
    external: ExternalTagSection = Field(default_factory=ExternalTagSection)
    report: ReportSection = Field(default_factory=ReportSection)

    def weakened(self) -> list[str]:
        """Settings weaker than the defaults, for `config.weakened` at start-up (loader.weakened)."""
        out: list[str] = []
        for part in ("classifier", "rules", "dnsbl", "ratelimit", "report"):
            if not getattr(self, part).enabled:
                out.append(f"spam.{part}.enabled = false")
        c = self.classifier
        if c.spam_probability > DEFAULT_SPAM_PROBABILITY:
            out.append(f"spam.classifier.spam_probability = {c.spam_probability} (default {DEFAULT_SPAM_PROBABILITY})")
        if c.low_probability > 0.5:
            out.append(f"spam.classifier.low_probability = {c.low_probability} (default 0.5)")
        if self.dnsbl.enabled and not self.dnsbl.client_lists and not self.dnsbl.domain_lists:
            out.append("spam.dnsbl: no lists configured")
        return out

