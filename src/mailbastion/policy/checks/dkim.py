"""The DKIM check (RFC 6376, RFC 8463): every signature verified, one symbol per signing domain.

Stores `DkimResults` for DMARC and Authentication-Results. A signature whose `l=` leaves body content
unsigned is result "policy" (never counted by DMARC) and R_DKIM_UNSIGNED_TAIL: the appended content
is flagged, scored to Junk by default (config/scores/auth.toml), instead of riding on the signature.
"""

from __future__ import annotations

from mailbastion.auth.dkim_verify import DkimResults, DkimVerifier
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

SYMBOLS = {
    "pass": "R_DKIM_ALLOW",
    "fail": "R_DKIM_REJECT",
    "neutral": "R_DKIM_PERMFAIL",
    "policy": "R_DKIM_UNSIGNED_TAIL",  # the only policy result we give: content after l= (RFC 6376 §8.2)
    "temperror": "R_DKIM_TEMPFAIL",
    "permerror": "R_DKIM_PERMFAIL",
}


class DkimCheck(BaseCheck):
    name = "dkim"
    stage = Stage.DATA
    emits = frozenset(SYMBOLS.values()) | {"R_DKIM_NA", "R_DKIM_WEAK_KEY"}
    on_error = Action.ACCEPT
    timeout = 15.0
    priority = 10

    def __init__(self, verifier: DkimVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        assert ctx.message is not None
        found = ctx.get(DkimResults)
        if found is None:
            found = await self.verifier.verify(ctx.message.raw)
            ctx.put(found)
        if not found.signatures:
            return CheckResult.of("R_DKIM_NA")
        symbols: list[Symbol] = []
        for sig in found.signatures:
            detail = f"{sig.domain}:{sig.selector}" + (f" {sig.reason}" if sig.reason else "")
            symbols.append(Symbol(SYMBOLS.get(sig.result, "R_DKIM_PERMFAIL"), detail[:200]))
            if sig.weak_key:
                symbols.append(Symbol("R_DKIM_WEAK_KEY", f"{sig.domain}:{sig.selector} {sig.key_bits} bits"))
        return CheckResult(symbols=tuple(symbols))
