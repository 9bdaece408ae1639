"""Bounces from the Internet as a sign of a hijacked account (issue 10).

    signs = BounceSigns(meter, suspend=handler.suspend_for, account_of=directory_account_of)
    gateway.bounce_listeners.append(signs)       # all-in-one: delivery/bounce_match.py calls it per matched bounce
    internal.bounce_listeners.append(signs)      # split: the MDA calls it per XBOUNCEOF sender (mailbox/lmtp_handler.py)

The gateway's BounceWatch matches inbound DSNs to what we sent (its sent log) and calls this with the
envelope sender of the bounced message; on a split the gateway is another host, so the match rides the
DSN's delivery inward on the mutual-TLS LMTP link (XBOUNCEOF) and the MDA calls this. Each one counts as one refusal for the account in the hijack
detector's window (`SendingMeter.bounce`: `[submission.hijack] bounces` within `bounce_window_seconds`,
the same count the gateway's 5xx at relay time feed). At the threshold, sending is suspended for the account
exactly as for a fan-out: the suspension is audited (directory SendingStore), the `submission.alarm` line
is logged and postmaster alerted; receiving goes on.

The sender is mapped to the account that owns it (itself, or the one account an alias of ours reaches); a
sender that is no account of ours (a DSN we made for a forwarded copy) counts for nobody. Runs on the event
loop of the process that holds the submission role (all-in-one: with the gateway's queue manager; split
internal host: with the MDA).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailbastion.submission.limits import SendingMeter, Sign

__all__ = ["BounceSigns"]

log = logging.getLogger("mailbastion.submission")


class BounceSigns:
    def __init__(self, meter: SendingMeter, *, suspend: Callable[[str, Sign], Awaitable[object]],
                 account_of: Callable[[str], str | None]) -> None:
        self.meter = meter
        self.suspend = suspend
        self.account_of = account_of  # blocking (a directory lookup): run in a worker thread
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, sender: str, detail: str) -> None:
        """One matched bounce of a message `sender` sent. Must be called on the event loop."""
        task = asyncio.get_running_loop().create_task(self._count(sender, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count(self, sender: str, detail: str) -> None:
        try:
            account = await asyncio.to_thread(self.account_of, sender)
            if account is None:
                return
            sign = self.meter.bounce(account)
            log.info("submission.bounce account=%s %s%s", account, detail, " (hijack threshold reached)" if sign else "")
            if sign is not None:
                await self.suspend(account, Sign(sign.kind, f"{sign.detail} (bounces from the Internet)"))
        except Exception:  # a bounce must never break the queue manager's loop
            log.exception("submission.bounce counting failed for %s", sender)

    async def drain(self) -> None:
        """Wait for the counts in flight (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
