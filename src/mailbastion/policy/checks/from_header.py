"""The From header check: one From address that every parser agrees on, or the message is refused.

Runs first at DATA (priority 10) and stores its `FromAnalysis` for DMARC, which judges that address.
"""

from __future__ import annotations

from mailbastion.auth.from_header import EMITS, FromAnalysis, analyze_from
from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced
from mailbastion.policy.check import BaseCheck, CheckContext


class FromHeaderCheck(BaseCheck):
    """Emits FROM_* symbols. Forces a 550 when the From address is missing, multiple or ambiguous:
    DMARC cannot protect a domain when parsers disagree on which domain the message is from."""

    name = "from_header"
    stage = Stage.DATA
    emits = EMITS
    on_error = Action.ACCEPT
    timeout = 5.0
    priority = 10

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        assert ctx.message is not None
        analysis: FromAnalysis = analyze_from(ctx.message.header)
        ctx.put(analysis)
        forced = Forced(Action.REJECT, replies.FROM_INVALID, by=self.name) if analysis.refuse else None
        return CheckResult(symbols=analysis.symbols, forced=forced)
