"""The notice to a user who let the grace period pass without accepting the acceptable use policy: one plain
text message per (account, version), committed through our spool like any message (as the quarantine digest
is, portal/digest.py), so it reaches the user's inbox by our own path.

    notifier = AupNotifier.from_settings(settings, directory)      # the lifecycle scheduler's minute check
    sent = await notifier.run()                                    # [(address, queue id)]

Sent in both enforcement modes ("submission" and "notify"; not with "off"). The spool commit comes first, the
record second: a crash between them sends the notice again at the next check rather than never.
"""

from __future__ import annotations

import datetime as dt
import logging
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from mailbastion.aup.standing import AccountStanding, AupPolicy, State, standings
from mailbastion.aup.store import AupStore
from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.core.ports import SpoolWriter
    from mailbastion.directory.store import Directory

__all__ = ["AupNotifier", "notice_message", "notify_overdue"]

log = logging.getLogger("mailbastion.aup")
SUBJECT = "Action needed: accept the acceptable use policy"


def notice_message(s: AccountStanding, policy: AupPolicy, *, sender: str, now: dt.datetime) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Acceptable use policy <{sender}>"
    msg["To"] = s.address
    msg["Subject"] = f"{SUBJECT} (version {s.version})"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to this
    effect = ("Until you accept it, mail you send is refused (receiving still works)."
              if policy.enforce == "submission" else
              "Your administrator sees in the acceptance report that it is overdue.")
    lines = [(f"The acceptable use policy (version {s.version}) was due to be accepted by "
             f"{s.due_at:%Y-%m-%d %H:%M} UTC, and you have not accepted it yet."), "", effect, "",
             "Read it and accept it in the mail portal (sign in with your mail address and password):",
             f"  {policy.accept_url}", "",
             "This message is sent once. Ask your administrator if you have a question about the policy.", ""]
    msg.set_content("\n".join(lines), charset="utf-8")
    return msg.as_bytes()


class AupNotifier:
    def __init__(self, store: AupStore, policy: AupPolicy, spool: SpoolWriter) -> None:
        self.store = store
        self.policy = policy
        self.spool = spool

    @staticmethod
    def from_settings(settings: Settings, directory: Directory) -> AupNotifier:
        from mailbastion.spool.writer import Spool

        return AupNotifier(AupStore(directory), AupPolicy.from_settings(settings),
                           Spool.for_system_mail(settings))

    def sender_for(self, address: str) -> str:
        return self.policy.notice_sender or f"postmaster@{address.rpartition('@')[2]}"

    async def run(self, now: dt.datetime | None = None) -> list[tuple[str, str]]:
        """Queue the notice for each overdue account not notified for the version in effect. Raises for a
        database or spool failure (the caller logs it and tries again at its next check)."""
        import asyncio

        if self.policy.enforce == "off":
            return []
        now = now or self.store.now()
        rows = await asyncio.to_thread(standings, self.store, self.policy, None, now)
        sent: list[tuple[str, str]] = []
        for s in rows:
            if s.state is not State.OVERDUE or s.notified_at is not None:
                continue
            sender = self.sender_for(s.address)
            raw = notice_message(s, self.policy, sender=sender, now=now)
            envelope = Envelope(parse_address(sender), (parse_address(s.address),))
            queue_id = await self.spool.commit(envelope, raw, client="aup-notice")
            await asyncio.to_thread(self.store.record_notice, s.address, s.version, queue_id)
            log.info("aup.notice to=%s version=%s due=%s id=%s", s.address, s.version,
                     s.due_at.isoformat(timespec="minutes"), queue_id)
            sent.append((s.address, queue_id))
        return sent


async def notify_overdue(settings: Settings, directory: Directory) -> list[tuple[str, str]]:
    """One round of notices (the lifecycle scheduler's minute check, lifecycle/scheduler.py). Never raises: a
    database or spool failure is logged and the round is tried again at the next check."""
    if settings.aup.enforce == "off":
        return []
    try:
        return await AupNotifier.from_settings(settings, directory).run()
    except Exception as exc:  # noqa: BLE001 - keep the scheduler going; the next check tries again
        log.error("aup.notice_failed error=%s: %s", type(exc).__name__, exc)
        return []
