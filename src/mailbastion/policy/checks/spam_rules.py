"""GTUBE and the hand-written spam and phishing rules (spam/rules.py), each one a symbol.

GTUBE (the standard anti-spam test string) forces a 550 by "gtube": it must be refused whatever the
weights say, so that `mailbastion audit` can prove the filter is live. It is searched in the raw bytes
(headers and body, before any decoding), as SpamAssassin does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.arrival import ArrivalTime
from mailbastion.spam.features import extract
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import GTUBE, RULE_SYMBOLS, SpamRules


class GtubeCheck(BaseCheck):
    name = "gtube"
    stage = Stage.DATA
    emits = frozenset({"GTUBE"})
    on_error = Action.ACCEPT
    timeout = 2.0
    priority = 5  # first: a forced reject stops the later (costlier) checks

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is not None and GTUBE in ctx.message.raw:
            return CheckResult((Symbol("GTUBE"),), Forced(Action.REJECT, replies.SPAM_REJECTED, by="gtube"))
        return EMPTY


class SpamRulesCheck(BaseCheck):
    name = "spam_rules"
    stage = Stage.DATA
    emits = RULE_SYMBOLS
    on_error = Action.ACCEPT
    timeout = 5.0
    priority = 50

    def __init__(self, rules: SpamRules, *, identity: Callable[[], OwnIdentity] | None = None) -> None:
        self.rules = rules
        self.identity = identity  # our domains and users, re-read when the recipient map changes

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return EMPTY
        is_outside = not ctx.peer.may_relay
        ident = self.identity() if self.identity is not None else None
        # Dates are judged against arrival: now on the live path; `scan` of stored mail puts ArrivalTime.
        arrival = ctx.get(ArrivalTime)
        now = arrival.timestamp if arrival is not None else time.time()
        found = self.rules.evaluate(extract(ctx.message), now=now, is_outside=is_outside, identity=ident)
        return CheckResult(symbols=tuple(found))
