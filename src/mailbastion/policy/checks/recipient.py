"""Recipient validation against the read-only recipient map (our domains only).

An unknown local user is refused at RCPT with 550 5.1.1 (no backscatter: we never accept and bounce
later). A deactivated account is refused exactly like an unknown one: the RecipientResolver answers
UNKNOWN_USER for it, so a leaver's address tells a prober nothing, unless the administrator named a
successor for it (issue 13): the refusal then says whom to write to instead (replies.user_left).

An SRS address of ours (`SRS0=...@our.domain`, the envelope sender of a copy we forwarded outside,
delivery/forwarding.py) is taken when `srs_check` verifies its hash and age, so the bounce can go back to
the original sender; a forged or expired one is refused 550 5.1.1 like an unknown user (no backscatter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from mailbastion.core import replies
from mailbastion.core.ports import RecipientResolver, ResolutionKind
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

__all__ = ["RecipientCheck"]


class RecipientCheck(BaseCheck):
    name: ClassVar[str] = "recipient"
    stage: ClassVar[Stage] = Stage.RCPT
    emits: ClassVar[frozenset[str]] = frozenset({"RCPT_UNKNOWN_USER", "RCPT_ALIAS"})
    # Fail closed: an unreadable map must not turn into "accept anything" (451, the sender retries).
    on_error: ClassVar[Action] = Action.SOFT_REJECT
    priority: ClassVar[int] = 20  # after relay: foreign domains never reach the map
    timeout: ClassVar[float] = 5.0

    def __init__(self, recipients: RecipientResolver, srs_check: Callable[[str], bool | None] | None = None) -> None:
        self.recipients = recipients
        self.srs_check = srs_check  # outbound.srs.Srs.check: None not SRS, True ours and valid, False refused

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        rcpt = ctx.rcpt
        if rcpt is None or rcpt.is_literal or not self.recipients.is_local_domain(rcpt.domain):
            return CheckResult()  # not ours: relay control decides
        if self.srs_check is not None:
            valid = self.srs_check(str(rcpt))
            if valid is True:
                return CheckResult()
            if valid is False:
                return CheckResult(symbols=(Symbol("RCPT_UNKNOWN_USER", str(rcpt)),),
                                   forced=Forced(Action.REJECT, replies.UNKNOWN_USER, by=self.name))
        resolution = self.recipients.resolve(rcpt)
        if resolution.kind in (ResolutionKind.UNKNOWN_USER, ResolutionKind.UNKNOWN_DOMAIN):
            return CheckResult(
                symbols=(Symbol("RCPT_UNKNOWN_USER", str(rcpt)),),
                forced=Forced(Action.REJECT, replies.user_left(resolution.successor) if resolution.successor
                              else replies.UNKNOWN_USER, by=self.name),
            )
        if resolution.kind is ResolutionKind.ALIAS:
            return CheckResult.of(Symbol("RCPT_ALIAS", str(rcpt)))
        return CheckResult()
