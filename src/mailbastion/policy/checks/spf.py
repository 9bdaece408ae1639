"""The SPF check (RFC 7208): the MAIL FROM identity, or HELO for the null sender.

Stores the `SpfResult` for DMARC (alignment) and Authentication-Results. A DNS failure is the result
"temperror" (R_SPF_DNSFAIL), never an exception: DMARC decides what a temperror means for its domain.
"""

from __future__ import annotations

from mailbastion.auth.spf import SpfEvaluator, SpfResult
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

# RFC 7208 §2.6 results → rspamd's symbol names.
SYMBOLS = {
    "pass": "R_SPF_ALLOW",
    "fail": "R_SPF_FAIL",
    "softfail": "R_SPF_SOFTFAIL",
    "neutral": "R_SPF_NEUTRAL",
    "none": "R_SPF_NA",
    "temperror": "R_SPF_DNSFAIL",
    "permerror": "R_SPF_PERMFAIL",
}


class SpfCheck(BaseCheck):
    name = "spf"
    stage = Stage.DATA
    emits = frozenset(SYMBOLS.values()) | {"R_SPF_HELO"}
    on_error = Action.ACCEPT  # fail open: DMARC treats a missing SPF result as temperror
    timeout = 20.0  # above the evaluator's own deadline, so a slow DNS gives temperror, not a check error
    priority = 10

    def __init__(self, evaluator: SpfEvaluator) -> None:
        self.evaluator = evaluator

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        result = ctx.get(SpfResult)  # computed earlier in the transaction (e.g. at MAIL)
        if result is None:
            helo = ctx.envelope.helo or ctx.peer.helo
            result = await self.evaluator.evaluate(ip=ctx.peer.ip, sender=ctx.envelope.sender, helo=helo)
            ctx.put(result)
        symbols = [Symbol(SYMBOLS[result.result], f"{result.domain}: {result.explanation}"[:200].rstrip(": "))]
        if result.identity == "helo":
            symbols.append(Symbol("R_SPF_HELO", result.domain))
        return CheckResult(symbols=tuple(symbols))
