"""The spam and phishing filter as a Feature: wiring only.

    feature = build(services)
    feature.checks()          # gtube, spam_rules, spam_classifier, dnsbl_client, dnsbl_uri, ratelimit,
                              # [greylist], [external_tag], [spam_report]   (empty when [spam] enabled = false)
    feature.store             # the ModelStore (site model under data_dir, shipped default until then)
    feature.report_learner    # ReportLearner: learn_from_report(raw, is_spam=..., reporter=...)
    feature.learn(raw, is_spam=True, source="junk-move")    # the entry point for Junk moves (MDA, later)
    services.extras["spam"] is feature

Our domains and users (for look-alike and impersonation rules, and the report addresses) come from the
recipient map the gateway already reads (`services.recipients`, a RecipientMap), re-read when it changes;
without one, from the JSON file at `directory.recipient_map`; plus `spam.rules.extra_domains`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mailbastion.apps.features import BaseFeature, Services
from mailbastion.policy.check import Check
from mailbastion.policy.checks.dnsbl import Blocklist, DnsblClientCheck, DnsblDomainCheck
from mailbastion.policy.checks.external_tag import ExternalTagCheck
from mailbastion.policy.checks.greylist import GreylistCheck
from mailbastion.policy.checks.ratelimit import RateLimitCheck
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_report import SpamReportCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.spam.greylist import Greylist, GreylistStore, MemoryGreylistStore, SqliteGreylistStore
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.ratelimit import RateLimiter, SqliteRateLimiter
from mailbastion.spam.report import ReportLearner
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore

log = logging.getLogger("mailbastion.spam")


class IdentitySource:
    """Our domains and user names, rebuilt only when the recipient map's data object changes."""

    def __init__(self, services: Services, extra_domains: list[str]) -> None:
        self._services = services
        self._extra = [d.lower() for d in extra_domains]
        self._key: object = None
        self._identity = OwnIdentity.of(self._extra)
        self._file = services.settings.path(services.settings.directory.recipient_map)

    def __call__(self) -> OwnIdentity:
        data = getattr(self._services.recipients, "data", None)
        if data is not None and hasattr(data, "domains"):
            if data is not self._key:
                self._key = data
                self._identity = OwnIdentity.of([*data.domains, *self._extra], getattr(data, "addresses", ()))
            return self._identity
        if self._key is None:
            self._key = "file"
            domains, addresses = read_recipient_file(self._file)
            self._identity = OwnIdentity.of([*domains, *self._extra], addresses)
        return self._identity

    def is_local_domain(self, domain: str) -> bool:
        recipients = self._services.recipients
        if recipients is not None:
            return recipients.is_local_domain(domain)
        return domain.lower() in self().domains


def read_recipient_file(path: Path) -> tuple[list[str], list[str]]:
    """`{"domains": [...], "addresses": [...]}` from the recipient map file; empty when absent or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], []
    if not isinstance(doc, dict):
        return [], []
    return [str(d) for d in doc.get("domains", [])], [str(a) for a in doc.get("addresses", [])]


@dataclass(eq=False)
class SpamFeature(BaseFeature):
    services: Services
    name: str = "spam"
    store: ModelStore | None = None
    report_learner: ReportLearner | None = None
    _checks: list[Check] = field(default_factory=list)
    _problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = self.services.settings
        spam = settings.spam
        if not spam.enabled:
            return
        identity = IdentitySource(self.services, spam.rules.extra_domains)
        self.store = ModelStore(settings.path(spam.classifier.model_path))
        checks: list[Check] = [GtubeCheck()]
        if spam.rules.enabled:
            rules = SpamRules(past_hours=spam.rules.date_past_hours, future_hours=spam.rules.date_future_hours)
            checks.append(SpamRulesCheck(rules, identity=identity))
        if spam.classifier.enabled:
            c = spam.classifier
            checks.append(SpamClassifierCheck(self.store, low_probability=c.low_probability,
                                              spam_probability=c.spam_probability,
                                              high_probability=c.high_probability, ham_probability=c.ham_probability))
            if self.store.source_path() is None:
                self._problems.append("spam: no classifier model (neither the shipped default nor a site model)")
        d = spam.dnsbl
        if d.enabled:
            resolver = self.services.resolver
            clients = [Blocklist(bl.zone, bl.symbol, tuple(bl.answers)) for bl in d.client_lists]
            domains = [Blocklist(bl.zone, bl.symbol, tuple(bl.answers)) for bl in d.domain_lists]
            if clients:
                checks.append(DnsblClientCheck(resolver, clients, timeout=d.timeout,
                                               reject_listed=d.reject_listed_clients))
            if domains:
                checks.append(DnsblDomainCheck(resolver, domains, timeout=d.timeout, max_domains=d.max_domains,
                                               own_domains=identity().domains))
        r = spam.ratelimit
        if r.enabled:
            shared = r.backend == "sqlite" or (r.backend == "auto" and settings.server.workers > 1)
            limiter: RateLimiter | SqliteRateLimiter = (SqliteRateLimiter(settings.path(r.path)) if shared
                                                        else RateLimiter())
            checks.append(RateLimitCheck(limiter, per_client=r.per_client, per_sender=r.per_sender,
                                         window=r.window_seconds))
        g = spam.greylist
        if g.enabled:
            store: GreylistStore = (SqliteGreylistStore(settings.path(g.path)) if g.backend == "sqlite"
                                    else MemoryGreylistStore())
            checks.append(GreylistCheck(Greylist(store, delay=g.delay_seconds, retry_window=g.retry_window_seconds,
                                                 pass_ttl=g.pass_ttl_seconds)))
        e = spam.external
        if e.mode != "off":
            checks.append(ExternalTagCheck(mode=e.mode, subject_tag=e.subject_tag, header_value=e.header_value))
        rep = spam.report
        if rep.enabled:
            self.report_learner = ReportLearner(self.store, is_local_domain=identity.is_local_domain,
                                                spam_local_part=rep.spam_local_part,
                                                ham_local_part=rep.ham_local_part,
                                                trusted_symbols=rep.trusted_symbols)
            checks.append(SpamReportCheck(self.report_learner))
        self._checks = checks
        # Other roles find the learning entry points here (the MDA for Junk moves, the portal, the CLI).
        self.services.extras[self.name] = self

    def learn(self, raw: bytes, *, is_spam: bool, source: str) -> int:
        """The one learning entry point for later callers: a user moving mail into Junk (source="junk-move")
        or out of it ("junk-rescue"). Blocking (file I/O): call it from a thread."""
        if self.store is None:
            raise RuntimeError("the spam filter is disabled")
        return self.store.learn(raw, is_spam=is_spam, source=source)

    def preload(self) -> None:
        """Read the classifier's model now (apps/workers.preload, in the parent before the acceptors fork):
        the children then share that one read instead of each loading the model on its first message."""
        if self.store is not None and self.services.settings.spam.classifier.enabled:
            self.store.model()

    def checks(self) -> list[Check]:
        return list(self._checks)

    def startup_problems(self) -> list[str]:
        return list(self._problems)

    async def start(self) -> None:
        if self.store is not None:
            self.store.model()  # load now, not on the first message


def build(services: Services) -> SpamFeature:
    return SpamFeature(services)
