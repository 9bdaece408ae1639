"""The SPF check (RFC 7208): the MAIL FROM identity, or HELO for the null sender.

Stores the `SpfResult` for DMARC (alignment) and Authentication-Results. A DNS failure is the result
"temperror" (R_SPF_DNSFAIL), never an exception: DMARC decides what a temperror means for its domain.

`SpfEarlyCheck` starts the evaluation at MAIL FROM, without delaying the reply, so that its DNS
lookups overlap RCPT and the DATA transfer; the DATA check then only collects the result. Without a
MAIL stage (a DATA-only runner), the DATA check evaluates on its own: DMARC never lacks SPF.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class SpfPending:
    """An evaluation started at MAIL for (client IP, MAIL FROM, HELO)."""

    key: tuple[str, str, str]
    task: asyncio.Task[SpfResult]


def _key(ctx: CheckContext) -> tuple[str, str, str]:
    return (ctx.peer.ip, ctx.envelope.sender_text, ctx.envelope.helo or ctx.peer.helo)


class SpfEarlyCheck(BaseCheck):
    """Starts the SPF evaluation at MAIL; emits nothing and never waits."""

    name = "spf_early"
    stage = Stage.MAIL
    emits = frozenset()
    on_error = Action.ACCEPT
    timeout = 2.0
    priority = 10

    def __init__(self, evaluator: SpfEvaluator) -> None:
        self.evaluator = evaluator
        self._running: set[asyncio.Task[SpfResult]] = set()  # strong references until each task ends

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        ip, _sender, helo = _key(ctx)
        task = asyncio.create_task(self.evaluator.evaluate(ip=ip, sender=ctx.envelope.sender, helo=helo))
        self._running.add(task)
        task.add_done_callback(self._finished)
        ctx.put(SpfPending(_key(ctx), task))
        return CheckResult()

    def _finished(self, task: asyncio.Task[SpfResult]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a transaction reset before DATA leaves no warning behind


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
        result = ctx.get(SpfResult)
        pending = ctx.get(SpfPending)
        if result is None and pending is not None and pending.key == _key(ctx):
            result = await pending.task
        if result is None:
            ip, _sender, helo = _key(ctx)
            result = await self.evaluator.evaluate(ip=ip, sender=ctx.envelope.sender, helo=helo)
        ctx.put(result)
        symbols = [Symbol(SYMBOLS[result.result], f"{result.domain}: {result.explanation}"[:200].rstrip(": "))]
        if result.identity == "helo":
            symbols.append(Symbol("R_SPF_HELO", result.domain))
        return CheckResult(symbols=tuple(symbols))
