"""The SMTP envelope: who sent, to whom, how it arrived."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mailbastion.core.address import Address


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: Address | None  # None is the null reverse-path <> (bounces)
    recipients: tuple[Address, ...] = ()
    helo: str = ""
    body_8bitmime: bool = False
    smtputf8: bool = False
    declared_size: int | None = None
    mail_params: tuple[tuple[str, str], ...] = field(default=())

    def with_recipient(self, rcpt: Address) -> Envelope:
        return replace(self, recipients=(*self.recipients, rcpt))

    @property
    def sender_text(self) -> str:
        return "" if self.sender is None else str(self.sender)
