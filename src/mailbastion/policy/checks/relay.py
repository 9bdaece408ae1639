"""Relay control, decided apart from spam scores so that no score edit can open the relay.

Default deny (Postfix `reject_unauth_destination`, Haraka `rcpt_to.in_host_list`): a recipient is
accepted from a client only when its domain is one of ours, or when the client may relay
(`peer.may_relay`: authenticated, or inside `relay.networks`). Everything else is forced to
550 5.7.1 at RCPT.

The classic tricks and where they die:
  `<@a,@b:u@c>` source route, `a@b@c`, `u@c.` trailing dot     parse_path → 501 at the edge
  `u%c@ours` percent hack, `c!u@ours` bang path,
  `"u@c"@ours` / `"u%c"@ours` quoted routing                      here: refused unless may_relay
  `u@[192.0.2.1]` address literal                                   here: never one of our domains
  `u@OURS.example` mixed case                                        domain is lower-cased: local
  `MAIL FROM:<x@ours>` + `RCPT TO:<y@foreign>`                       the sender plays no part here
(Postfix `allow_untrusted_routing = no`.)
"""

from __future__ import annotations

from typing import ClassVar

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.ports import RecipientResolver
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

__all__ = ["RelayCheck", "routing_trick"]


def routing_trick(rcpt: Address) -> str | None:
    """Name the old routing syntax a recipient leans on, or None for a plain mailbox."""
    if rcpt.is_literal:
        return "address literal"
    local = rcpt.unquoted_local
    if rcpt.is_quoted and ("@" in local or "%" in local or "!" in local or ":" in local):
        return "quoted routing"
    if "%" in local:
        return "percent hack"
    if "!" in local:
        return "bang path"
    return None


class RelayCheck(BaseCheck):
    name: ClassVar[str] = "relay"
    stage: ClassVar[Stage] = Stage.RCPT
    emits: ClassVar[frozenset[str]] = frozenset({"RELAY_DENIED", "RELAY_ALLOWED"})
    # Fail closed: if we cannot tell whether a domain is ours, the relay stays shut (451, retry later).
    on_error: ClassVar[Action] = Action.SOFT_REJECT
    priority: ClassVar[int] = 10
    timeout: ClassVar[float] = 5.0

    def __init__(self, recipients: RecipientResolver) -> None:
        self.recipients = recipients

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        rcpt = ctx.rcpt
        if rcpt is None:
            return CheckResult()
        may_relay = ctx.peer.may_relay
        trick = routing_trick(rcpt)
        if trick is not None and not may_relay:
            return self._deny(f"{trick}: {rcpt}")
        if not rcpt.is_literal and self.recipients.is_local_domain(rcpt.domain):
            return CheckResult()
        if may_relay:
            who = ctx.peer.authenticated_as or ctx.peer.ip
            return CheckResult.of(Symbol("RELAY_ALLOWED", f"{who} -> {rcpt.domain}"))
        return self._deny(f"not a local domain: {rcpt.domain}")

    def _deny(self, detail: str) -> CheckResult:
        return CheckResult(
            symbols=(Symbol("RELAY_DENIED", detail),),
            forced=Forced(Action.REJECT, replies.RELAY_DENIED, by=self.name),
        )
