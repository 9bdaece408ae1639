"""The SMTP envelope: who sent, to whom, how it arrived, and what the client asked of us for it.

The MAIL and RCPT parameters that change what we owe the sender travel with the envelope through the
spool to every delivery agent:

    BODY=8BITMIME, SMTPUTF8        RFC 6152, RFC 6531: how the content may be relayed
    RET=, ENVID=                   RFC 3461 §4.3, §4.4: what a DSN returns, the sender's envelope id
    NOTIFY=, ORCPT=  (per RCPT)    RFC 3461 §4.1, §4.2: which DSNs the sender wants, the original address
    REQUIRETLS                     RFC 8689: every hop must use verified TLS, or the message bounces
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mailbastion.core.address import Address

NOTIFY_VALUES = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})


@dataclass(frozen=True, slots=True)
class RecipientDsn:
    """RFC 3461 parameters of one RCPT. `notify == ()`: not given (the default: FAILURE and maybe DELAY)."""

    notify: tuple[str, ...] = ()  # ("NEVER",) or a subset of SUCCESS, FAILURE, DELAY
    orcpt: str | None = None  # "rfc822;alice@example.org", xtext already decoded

    def wants(self, kind: str) -> bool:
        """Does the sender want a DSN of `kind` ("SUCCESS", "FAILURE", "DELAY")? RFC 3461 §4.1: without
        NOTIFY, FAILURE (and DELAY at our discretion) are sent; SUCCESS only when asked."""
        if not self.notify:
            return kind in ("FAILURE", "DELAY")
        return kind in self.notify


NO_DSN_PARAMS = RecipientDsn()


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: Address | None  # None is the null reverse-path <> (bounces)
    recipients: tuple[Address, ...] = ()
    helo: str = ""
    body_8bitmime: bool = False
    smtputf8: bool = False
    declared_size: int | None = None
    mail_params: tuple[tuple[str, str], ...] = field(default=())
    dsn_ret: str | None = None  # "FULL" | "HDRS" (RFC 3461 RET)
    dsn_envid: str | None = None  # RFC 3461 ENVID, xtext decoded
    requiretls: bool = False  # RFC 8689 REQUIRETLS on MAIL FROM
    rcpt_dsn: tuple[RecipientDsn, ...] = ()  # aligned with `recipients`; shorter means defaults

    def with_recipient(self, rcpt: Address, dsn: RecipientDsn = NO_DSN_PARAMS) -> Envelope:
        params = (*self.rcpt_dsn, *([NO_DSN_PARAMS] * (len(self.recipients) - len(self.rcpt_dsn))), dsn)
        return replace(self, recipients=(*self.recipients, rcpt), rcpt_dsn=params)

    def dsn_of(self, index: int) -> RecipientDsn:
        """The RFC 3461 parameters of the `index`-th recipient."""
        return self.rcpt_dsn[index] if index < len(self.rcpt_dsn) else NO_DSN_PARAMS

    @property
    def sender_text(self) -> str:
        return "" if self.sender is None else str(self.sender)
