"""GTUBE and the hand-written spam and phishing rules (spam/rules.py), each one a symbol.

GTUBE (the standard anti-spam test string) forces a 550 by "gtube": it must be refused whatever the
weights say, so that `mailbastion audit` can prove the filter is live. It is searched in the raw bytes
(headers and body, before any decoding), as SpamAssassin does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailbastion.core import replies
from mailbastion.core.message import SpooledMessage
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
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

    def __init__(self, rules: SpamRules, *, now_of: Callable[[SpooledMessage], float] | None = None,
                 identity: Callable[[], OwnIdentity] | None = None) -> None:
        self.rules = rules
        self.identity = identity  # our domains and users, re-read when the recipient map changes
        # When the message arrived; the bench replays old corpora and passes their Received time.
        self.now_of = now_of or (lambda _m: time.time())

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return EMPTY
        is_outside = not ctx.peer.may_relay
        ident = self.identity() if self.identity is not None else None
        found = self.rules.evaluate(extract(ctx.message), now=self.now_of(ctx.message), is_outside=is_outside,
                                    identity=ident)
        return CheckResult(symbols=tuple(found))
