"""The DMARC check (RFC 7489): runs after SPF, DKIM, ARC and From (priority 20) and applies the policy.

    p=reject      → 550 5.7.1 at end of DATA (Forced REJECT, by "dmarc")
    p=quarantine  → the Junk folder or our quarantine (auth.dmarc_quarantine)
    p=none        → accepted, with symbols
    pct           → a message not sampled gets the next less strict policy (§6.6.4)
    temperror on a p=reject domain → 451 (§6.6.2: SPF or DKIM could not be checked; the sender retries)

A failure that a trusted ARC sealer saw pass is overridden (RFC 8617 §7.2): DMARC_POLICY_ARC_OVERRIDE.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

from mailbastion.auth.dkim_verify import ArcResult, DkimResults
from mailbastion.auth.dmarc import DmarcOutcome, DmarcPolicyFinder, evaluate
from mailbastion.auth.from_header import FromAnalysis
from mailbastion.auth.spf import SpfResult
from mailbastion.core import replies
from mailbastion.core.errors import LookupTimeout
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.policy.checks.arc import is_trusted
from mailbastion.policy.checks.auth_results import strip_comments

EMITS = frozenset({
    "DMARC_POLICY_ALLOW", "DMARC_POLICY_REJECT", "DMARC_POLICY_QUARANTINE", "DMARC_POLICY_SOFTFAIL", "DMARC_NA",
    "DMARC_DNSFAIL", "DMARC_BAD_POLICY", "DMARC_POLICY_ARC_OVERRIDE",
})


def arc_saw_pass(arc: ArcResult, from_domain: str) -> bool:
    """The sealed ARC-Authentication-Results of the latest instance says DMARC passed for this From domain."""
    aar = strip_comments(arc.latest_aar).lower()
    if not re.search(r"(?:^|;)\s*dmarc\s*=\s*pass\b", aar):
        return False
    m = re.search(r"dmarc\s*=\s*pass[^;]*header\.from\s*=\s*([^\s;]+)", aar)
    return m is None or m.group(1).rstrip(".") == from_domain


class DmarcCheck(BaseCheck):
    name = "dmarc"
    stage = Stage.DATA
    emits = EMITS
    # Fail open on a crash or a hung check: the policy is then unknown, as with no record. DNS trouble
    # on a domain known to say p=reject is handled explicitly below (451), not by this.
    on_error = Action.ACCEPT
    timeout = 12.0  # two sequential lookups (the From domain, then its organizational domain) of 5 s each
    priority = 20  # after spf, dkim, arc and from_header (10)

    def __init__(self, finder: DmarcPolicyFinder, *, quarantine_action: str = "junk", enforce: bool = True,
                 tempfail_on_reject: bool = True, trusted_sealers: Iterable[str] = (),
                 sample: Callable[[], float] = random.random) -> None:
        self.finder = finder
        self.quarantine = Action.JUNK if quarantine_action == "junk" else Action.QUARANTINE
        self.enforce = enforce
        self.tempfail_on_reject = tempfail_on_reject
        self.trusted = tuple(trusted_sealers)
        self.sample = sample

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        sender = ctx.get(FromAnalysis)
        if sender is None or sender.domain is None:
            return CheckResult()  # from_header refused the message, or did not run: nothing to judge
        try:
            record = await self.finder.find(sender.domain)
        except LookupTimeout as exc:
            ctx.put(DmarcOutcome("temperror", sender.domain, reason=str(exc)))
            return CheckResult.of(Symbol("DMARC_DNSFAIL", f"{sender.domain}: {exc}"[:200]))
        dkim = ctx.get(DkimResults) or DkimResults()
        outcome = evaluate(sender.domain, record, ctx.get(SpfResult), dkim.signatures, sample=self.sample)
        symbols: list[Symbol] = []
        if record is not None and record.malformed:
            symbols.append(Symbol("DMARC_BAD_POLICY", f"{record.domain}: {record.malformed}"))
        forced: Forced | None = None
        if outcome.result == "none":
            symbols.append(Symbol("DMARC_NA", sender.domain))
        elif outcome.result == "pass":
            how = "+".join(n for n, ok in (("spf", outcome.spf_aligned), ("dkim", outcome.dkim_aligned)) if ok)
            symbols.append(Symbol("DMARC_POLICY_ALLOW", f"{sender.domain}: {how}"))
        elif outcome.result == "temperror":
            symbols.append(Symbol("DMARC_DNSFAIL", f"{sender.domain}: p={outcome.policy}"))
            if outcome.policy == "reject" and self.tempfail_on_reject:
                forced = Forced(Action.SOFT_REJECT, replies.DMARC_TEMPFAIL, by=self.name)
        else:
            arc = ctx.get(ArcResult)
            if (arc is not None and arc.cv == "pass" and is_trusted(arc.sealer, self.trusted)
                    and arc_saw_pass(arc, sender.domain)):
                symbols.append(Symbol("DMARC_POLICY_ARC_OVERRIDE", f"{sender.domain} via {arc.sealer}"))
                outcome = DmarcOutcome("fail", sender.domain, outcome.policy, "none", record=record,
                                       reason=f"arc override by {arc.sealer}")
            elif outcome.applied == "reject":
                symbols.append(Symbol("DMARC_POLICY_REJECT", sender.domain))
                forced = Forced(Action.REJECT, replies.DMARC_REJECT, by=self.name)
            elif outcome.applied == "quarantine":
                symbols.append(Symbol("DMARC_POLICY_QUARANTINE", sender.domain))
                forced = Forced(self.quarantine, replies.OK, by=self.name)
            else:
                symbols.append(Symbol("DMARC_POLICY_SOFTFAIL", f"{sender.domain}: p={outcome.policy}"))
        ctx.put(outcome)
        return CheckResult(symbols=tuple(symbols), forced=forced if self.enforce else None)
