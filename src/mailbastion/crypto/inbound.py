"""Inbound encrypted mail at the gateway: reported, never opened.

The DMZ gateway holds no private keys, so it cannot decrypt S/MIME or OpenPGP mail: what is inside is
opaque to every engine (the anti-virus engines scan the ciphertext, which shows nothing). This check says
so with a symbol, ENCRYPTED_SMIME or ENCRYPTED_PGP (weight 0: information for the log, the quarantine and
the administrator), and `encryption.inbound_encrypted` decides: "accept" (the default: the recipient's
client decrypts, the workstation's anti-virus scans what it shows), "hold" (quarantine for an
administrator) or "reject" (550 5.7.1).

Imports no key material: the gateway role loads this module and nothing else of `crypto`.
"""

from __future__ import annotations

from mailbastion.core import replies
from mailbastion.core.replies import Reply
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.engines.attachments import encrypted_mail_kind
from mailbastion.policy.check import BaseCheck, CheckContext

__all__ = ["ENCRYPTED_REJECTED", "SYMBOLS", "EncryptedMailCheck"]

SYMBOLS = {"smime": "ENCRYPTED_SMIME", "pgp": "ENCRYPTED_PGP"}
ENCRYPTED_REJECTED = Reply(550, "5.7.1", "Message rejected: encrypted content cannot be scanned here")


class EncryptedMailCheck(BaseCheck):
    name = "encrypted_mail"
    stage = Stage.DATA
    emits = frozenset(SYMBOLS.values())
    on_error = Action.ACCEPT  # a classification, not a security check: its failure changes nothing
    timeout = 5.0
    priority = 30

    def __init__(self, *, action: str = "accept") -> None:
        if action not in ("accept", "hold", "reject"):
            raise ValueError(f"unknown inbound_encrypted action {action!r}")
        self.action = action

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return EMPTY
        found: dict[str, str] = {}
        for part in ctx.message.parts:
            kind = encrypted_mail_kind(part.declared_type, part.filename, part.data)
            if kind and kind not in found:
                found[kind] = part.where
        if not found:
            return EMPTY
        symbols = tuple(Symbol(SYMBOLS[k], f"opaque part {where}") for k, where in found.items())
        if self.action == "hold":
            return CheckResult(symbols=symbols, forced=Forced(Action.QUARANTINE, replies.OK, by=self.name))
        if self.action == "reject":
            return CheckResult(symbols=symbols, forced=Forced(Action.REJECT, ENCRYPTED_REJECTED, by=self.name))
        return CheckResult(symbols=symbols)
