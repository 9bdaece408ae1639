"""Rate limits at MAIL FROM: per outside client address and per sender (SASL identity, else MAIL FROM).

Over the limit → 450 4.7.1 (Forced SOFT_REJECT by "ratelimit"): the sender retries later, nothing is lost.
Clients in relay.networks and authenticated users are not limited per address (they share one), but
an authenticated user is still limited per identity: a stolen password must not turn into a spam run.
"""

from __future__ import annotations

import asyncio

from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.ratelimit import RateLimiter, SqliteRateLimiter


class RateLimitCheck(BaseCheck):
    name = "ratelimit"
    stage = Stage.MAIL
    emits = frozenset({"RATELIMIT_CLIENT", "RATELIMIT_SENDER"})
    on_error = Action.ACCEPT
    timeout = 1.0
    priority = 30

    def __init__(self, limiter: RateLimiter | SqliteRateLimiter, *, per_client: int, per_sender: int,
                 window: float) -> None:
        self.limiter = limiter
        self.per_client, self.per_sender, self.window = per_client, per_sender, window

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        peer = ctx.peer
        if not peer.may_relay and not await self._hit(f"client:{peer.ip}", self.per_client):
            return self._limited("RATELIMIT_CLIENT", peer.ip)
        sender = peer.authenticated_as or (ctx.envelope.sender.normalized if ctx.envelope.sender else "")
        if sender and not await self._hit(f"sender:{sender.lower()}", self.per_sender):
            return self._limited("RATELIMIT_SENDER", sender)
        return EMPTY

    async def _hit(self, key: str, limit: int) -> bool:
        if isinstance(self.limiter, SqliteRateLimiter):  # file I/O and locks: off the event loop
            return await asyncio.to_thread(self.limiter.hit, key, limit=limit, window=self.window)
        return self.limiter.hit(key, limit=limit, window=self.window)

    def _limited(self, symbol: str, who: str) -> CheckResult:
        return CheckResult((Symbol(symbol, who),), Forced(Action.SOFT_REJECT, replies.RATE_LIMITED, by=self.name))
