"""Greylisting at RCPT (optional, off by default): a new (client /24, sender, recipient) is asked to retry.

First sight → 451 4.7.1 (Forced SOFT_REJECT by "greylist", GREYLIST_DEFERRED); a retry after the delay
passes (GREYLIST_PASSED) and is remembered. Authenticated clients and relay.networks are never greylisted.
A store failure fails open: greylisting delays mail, it must never lose it.
"""

from __future__ import annotations

import asyncio

from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.greylist import Greylist, GreyOutcome


class GreylistCheck(BaseCheck):
    name = "greylist"
    stage = Stage.RCPT
    emits = frozenset({"GREYLIST_DEFERRED", "GREYLIST_PASSED", "GREYLIST_KNOWN"})
    on_error = Action.ACCEPT
    timeout = 2.0
    priority = 80  # after relay and recipient checks: only real recipients are greylisted

    def __init__(self, greylist: Greylist) -> None:
        self.greylist = greylist

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.peer.may_relay or ctx.rcpt is None:
            return EMPTY
        sender = ctx.envelope.sender.normalized if ctx.envelope.sender else ""
        outcome = await asyncio.to_thread(self.greylist.check, ctx.peer.ip, sender, ctx.rcpt.normalized)
        if outcome is GreyOutcome.DEFERRED:
            return CheckResult((Symbol("GREYLIST_DEFERRED"),),
                               Forced(Action.SOFT_REJECT, replies.GREYLISTED, by=self.name))
        return CheckResult.of("GREYLIST_PASSED" if outcome is GreyOutcome.PASSED else "GREYLIST_KNOWN")
