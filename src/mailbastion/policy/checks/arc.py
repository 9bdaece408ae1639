"""The ARC check (RFC 8617): the chain verified, and whether its latest sealer is one we trust.

A trusted, valid chain lets DMARC accept mail a mailing list broke (RFC 8617 §7.2, RFC 7489 §6.7
local policy override) when the sealer saw it pass. Stores `ArcResult`.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailbastion.auth.dkim_verify import ArcResult, DkimVerifier
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

SYMBOLS = {"pass": "ARC_ALLOW", "fail": "ARC_REJECT", "none": "ARC_NA", "temperror": "ARC_DNSFAIL"}


def is_trusted(sealer: str, trusted: Iterable[str]) -> bool:
    """A sealer is trusted when it is a configured domain or a subdomain of one."""
    sealer = sealer.lower().rstrip(".")
    return any(sealer == t or sealer.endswith("." + t) for t in (x.lower().rstrip(".") for x in trusted) if t)


class ArcCheck(BaseCheck):
    name = "arc"
    stage = Stage.DATA
    emits = frozenset(SYMBOLS.values()) | {"ARC_TRUSTED"}
    on_error = Action.ACCEPT
    timeout = 15.0
    priority = 10

    def __init__(self, verifier: DkimVerifier, trusted_sealers: Iterable[str] = ()) -> None:
        self.verifier = verifier
        self.trusted = tuple(trusted_sealers)

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        assert ctx.message is not None
        result = ctx.get(ArcResult)
        if result is None:
            result = await self.verifier.verify_arc(ctx.message.raw)
            ctx.put(result)
        detail = f"{result.sealer} i={result.instances}" if result.sealer else result.reason
        symbols = [Symbol(SYMBOLS[result.cv], detail[:200])]
        if result.cv == "pass" and is_trusted(result.sealer, self.trusted):
            symbols.append(Symbol("ARC_TRUSTED", result.sealer))
        return CheckResult(symbols=tuple(symbols))
