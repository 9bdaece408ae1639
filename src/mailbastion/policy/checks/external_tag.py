"""Mark mail from outside the organisation (an awareness aid): `[EXTERNAL]` in the Subject, or a header.

Outside means: the client is neither authenticated nor in relay.networks. A message whose From claims
one of our domains but comes from outside is marked too (that is exactly the case to warn about).
The mark is an `Edit` applied after the verdict; the symbol EXTERNAL_SENDER (weight 0) records it.
A body banner needs an Edit kind the core does not have yet (see the spam feature's notes).
"""

from __future__ import annotations

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Edit, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

EXTERNAL_HEADER = "X-External-Sender"


class ExternalTagCheck(BaseCheck):
    name = "external_tag"
    stage = Stage.DATA
    emits = frozenset({"EXTERNAL_SENDER"})
    on_error = Action.ACCEPT
    timeout = 1.0
    priority = 90

    def __init__(self, *, mode: str = "subject", subject_tag: str = "[EXTERNAL]",
                 header_value: str = "This message comes from outside the organisation.") -> None:
        if mode not in ("subject", "header"):
            raise ValueError(f"unknown external tag mode {mode!r}")
        self.mode, self.subject_tag, self.header_value = mode, subject_tag, header_value

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None or ctx.peer.may_relay:
            return EMPTY
        edit = Edit.subject_tag(self.subject_tag) if self.mode == "subject" else Edit.prepend(
            EXTERNAL_HEADER, self.header_value)
        return CheckResult(symbols=(Symbol("EXTERNAL_SENDER", ctx.peer.ip),), edits=(edit,))
