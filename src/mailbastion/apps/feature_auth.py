"""Sender authentication as a Feature: SPF, DKIM, ARC, DMARC, From, look-alike and Authentication-Results checks.

    feature = build(services)           # services.resolver is the shared TTL-cached DnsResolver
    pipeline_checks = feature.checks()  # empty when [auth] enabled = false
    signer = feature.signer()           # DkimSigner for submission (None when no key is active)

Wiring only: the checks are built here with their collaborators; nothing here decides anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbastion.apps.features import BaseFeature, Services
from mailbastion.auth.dkim_verify import DkimVerifier
from mailbastion.auth.dmarc import DmarcPolicyFinder
from mailbastion.auth.keys import KeyStore
from mailbastion.auth.spf import SpfEvaluator
from mailbastion.config.sections.auth import weakened
from mailbastion.policy.check import Check
from mailbastion.policy.checks.arc import ArcCheck
from mailbastion.policy.checks.auth_results import AuthResultsCheck
from mailbastion.policy.checks.dkim import DkimCheck
from mailbastion.policy.checks.dmarc import DmarcCheck
from mailbastion.policy.checks.from_header import FromHeaderCheck
from mailbastion.policy.checks.lookalike import LookalikeCheck
from mailbastion.policy.checks.spf import SpfCheck, SpfEarlyCheck
from mailbastion.spam.lookalike import shipped_list

if TYPE_CHECKING:
    from mailbastion.submission.dkim_signer import DkimSigner

log = logging.getLogger("mailbastion.auth")


@dataclass(eq=False)
class AuthFeature(BaseFeature):
    services: Services
    name: str = "auth"
    _checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = self.services.settings
        auth = settings.auth
        if not auth.enabled:
            return
        for line in weakened(auth):
            log.warning("config.weakened %s", line)
        resolver = self.services.resolver
        verifier = DkimVerifier(resolver, timeout=auth.dkim_timeout, max_signatures=auth.max_dkim_signatures,
                                min_rsa_bits=auth.min_rsa_bits)
        spf = SpfEvaluator(resolver, timeout=auth.spf_timeout)
        self._checks = [
            SpfEarlyCheck(spf),
            FromHeaderCheck(),
            SpfCheck(spf),
            DkimCheck(verifier),
            ArcCheck(verifier, auth.trusted_arc_sealers),
            DmarcCheck(DmarcPolicyFinder(resolver), quarantine_action=auth.dmarc_quarantine,
                       enforce=auth.dmarc_enforce, tempfail_on_reject=auth.dmarc_tempfail_on_reject_policy,
                       trusted_sealers=auth.trusted_arc_sealers),
            AuthResultsCheck(self.authserv_id),
        ]
        look = auth.lookalike
        if look.enabled:
            # Our domains as the spam rules see them: the recipient map (re-read when it changes) and
            # spam.rules.extra_domains.
            from mailbastion.apps.feature_spam import IdentitySource

            identity = IdentitySource(self.services, settings.spam.rules.extra_domains)
            impersonated = [*(shipped_list() if look.shipped_list else []), *look.impersonated_domains]
            self._checks.append(LookalikeCheck(own=lambda: identity().domains, partners=look.partner_domains,
                                               impersonated=impersonated, action=look.action,
                                               max_link_domains=look.max_link_domains))

    @property
    def authserv_id(self) -> str:
        s = self.services.settings
        return s.auth.authserv_id or s.server.hostname

    def checks(self) -> list[Check]:
        return list(self._checks)

    def key_store(self) -> KeyStore:
        s = self.services.settings
        return KeyStore(s.path(s.auth.dkim_keys_dir))

    def signer(self) -> DkimSigner | None:
        """The DKIM signer submission uses, or None when no domain has an active key."""
        from mailbastion.submission.dkim_signer import DkimSigner  # submission only: the gateway never signs

        s = self.services.settings
        signer = DkimSigner(self.key_store(), domains=s.auth.signing_domains, algorithms=s.auth.sign_algorithms)
        return signer if signer.domains() else None

    def startup_problems(self) -> list[str]:
        problems = []
        if self.services.settings.auth.enabled:
            problems.extend(self.key_store().permission_problems())
        return problems


def build(services: Services) -> AuthFeature:
    return AuthFeature(services)
