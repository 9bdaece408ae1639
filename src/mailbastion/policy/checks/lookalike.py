"""The look-alike domain check: homographs of our domains, our partners' and frequently impersonated ones.

A phishing domain can carry valid SPF, DKIM and DMARC of its own: authentication says who sent the
message, not whether the name only looks like someone else's. This check reads the domains a person
sees, namely the From domain (the agreed one, from `FromAnalysis`), the envelope sender's domain and
the link hosts, and reports, with `spam/lookalike.py` (Unicode TR39 through ICU):

    LOOKALIKE_OWN_DOMAIN      reads like one of our domains          paypal.example~ours.example (from)
    LOOKALIKE_PARTNER_DOMAIN  reads like a partner's ([auth.lookalike] partner_domains)
    LOOKALIKE_BRAND_DOMAIN    reads like a frequently impersonated domain (shipped list + impersonated_domains)
    LOOKALIKE_MIXED_SCRIPT    a label mixing scripts (Latin with Cyrillic...) or digit systems
    LOOKALIKE_WHOLE_SCRIPT    a label in one other script that reads as ASCII (аррӏе)

Any of them forces the message into Junk (`action = "junk"`, the default) or the quarantine, "by
lookalike", whatever the other scores say; `action = "score"` leaves only the weights of
config/scores/lookalike.toml. The spam rules keep their own LOOKALIKE_DOMAIN and PUNYCODE_DOMAIN
(edit-distance look-alikes of our domains, any xn-- domain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailbastion.auth.from_header import FromAnalysis, analyze_from
from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.features import extract
from mailbastion.spam.lookalike import ProtectedDomains, label_problems

IMITATION_SYMBOLS = {"own": "LOOKALIKE_OWN_DOMAIN", "partner": "LOOKALIKE_PARTNER_DOMAIN",
                     "brand": "LOOKALIKE_BRAND_DOMAIN"}
PROBLEM_SYMBOLS = {"mixed": "LOOKALIKE_MIXED_SCRIPT", "whole": "LOOKALIKE_WHOLE_SCRIPT"}
ACTIONS = {"junk": Action.JUNK, "quarantine": Action.QUARANTINE}


def _is_name(host: str) -> bool:
    """A host that is a domain name, not an address literal."""
    return any(c.isalpha() for c in host) and ":" not in host and not host.startswith("[")


class LookalikeCheck(BaseCheck):
    name = "lookalike"
    stage = Stage.DATA
    emits = frozenset(IMITATION_SYMBOLS.values()) | frozenset(PROBLEM_SYMBOLS.values())
    on_error = Action.ACCEPT  # a crash here must not hold mail; the symbol LOOKALIKE_CHECK_ERROR records it
    timeout = 5.0
    priority = 20  # after from_header (10), whose FromAnalysis it reads

    def __init__(self, *, own: Callable[[], Iterable[str]] = frozenset, partners: Iterable[str] = (),
                 impersonated: Iterable[str] = (), action: str = "junk", max_link_domains: int = 30) -> None:
        """`own` is called per message (our domains change when the recipient map does); the
        skeleton indexes are rebuilt only when its answer changes."""
        self.own = own
        self.partners = tuple(partners)
        self.impersonated = tuple(impersonated)
        self.action = ACTIONS.get(action)  # None: "score", symbols only
        self.max_link_domains = max_link_domains
        self._key: frozenset[str] | None = None
        self._protected = ProtectedDomains.of()

    def protected(self) -> ProtectedDomains:
        own = frozenset(self.own())
        if own != self._key:
            self._protected = ProtectedDomains.of(own=own, partners=self.partners, impersonated=self.impersonated)
            self._key = own
        return self._protected

    def places(self, ctx: CheckContext) -> dict[str, str]:
        """Each domain to judge, with where it was first seen: from, mailfrom, link."""
        assert ctx.message is not None
        found: dict[str, str] = {}
        sender = ctx.get(FromAnalysis) or analyze_from(ctx.message.header)
        if sender.domain:
            found[sender.domain] = "from"
        if ctx.envelope.sender is not None and ctx.envelope.sender.domain:
            found.setdefault(ctx.envelope.sender.domain, "mailfrom")
        if self.max_link_domains:
            hosts = [h for h in extract(ctx.message).url_hosts if _is_name(h)]
            for host in hosts[: self.max_link_domains]:
                found.setdefault(host.lower().rstrip("."), "link")
        return found

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return CheckResult()
        protected = self.protected()
        seen: dict[str, Symbol] = {}  # one symbol per name: the first place it showed up
        for domain, where in self.places(ctx).items():
            imitation = protected.imitated(domain)
            if imitation is not None:
                name = IMITATION_SYMBOLS[imitation.source]
                seen.setdefault(name, Symbol(name, f"{domain}~{imitation.protected} ({where})"[:200]))
            for problem in label_problems(domain):
                name = PROBLEM_SYMBOLS[problem.kind]
                seen.setdefault(name, Symbol(name, f"{problem.label} {problem.scripts} in {domain} ({where})"[:200]))
        if not seen:
            return CheckResult()
        forced = Forced(self.action, replies.OK, by=self.name) if self.action is not None else None
        return CheckResult(symbols=tuple(seen.values()), forced=forced)


__all__ = ["LookalikeCheck"]
