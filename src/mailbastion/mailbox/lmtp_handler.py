"""The MDA's LmtpStageHandler: recipients resolved through the directory, copies written into Maildirs.

- RCPT resolves through the directory: unknown, inactive or foreign → 550 5.1.1; aliases expand to
  their local mailboxes, `user+tag@` reaches `user@`. An alias target outside our domains cannot be
  delivered here (forwarding is the gateway's job): it is logged and skipped; an alias with no local
  target is refused at RCPT.
- After DATA (or BDAT LAST): one reply per accepted recipient, in order (RFC 2033 §4.2). A full
  mailbox gives 452 4.2.2 to that recipient only. Each 250 is sent after the copy is fsynced into
  new/ (a 250 is a promise). A mailbox reached twice in one transaction gets one copy.
- Each copy gets Return-Path and Delivered-To; a message that already carries our Delivered-To for
  that mailbox is a loop (554 5.4.6). `X-Mailbastion-*` fields are removed before writing.

`deliver_here` is the same transaction without the link, for the all-in-one's queue manager in this
process (`direct.py`, architecture change 61).

The LMTP link (docs/architecture.md): `XMAILBASTION` is offered only to a client whose certificate our CA
verified, and with it the MAIL parameters `XQUEUEID=<queue id>` and `XFOLDER=INBOX|Junk`
(`core.verdict.Folder`; Junk maps to `mailbox.junk_folder`). With XQUEUEID, delivery is exactly
once (`journal.py`): a (queue id, mailbox) pair already delivered answers 250 and writes nothing.
Without them (a client that is not our gateway) the message goes to INBOX with a fresh file name and
no exactly-once; no header of the message can stand in for them. `XBOUNCEOF=<xtext>,<xtext>...` marks a
DSN the gateway matched to mail we sent, naming our senders it reports refused: once its copies are
written (the first time only: a resent queue id counts nothing), each is told to `bounce_listeners`
(the split internal host's submission role counts it as a sign of a hijacked account).

Encryption at rest (`at_rest`, an `AtRestEncryption`: `crypto/at_rest.py` in the internal role): a copy
for a mailbox it applies to is encrypted to the owner's public key before it is written, so no plaintext
of it ever reaches the disk (quota counts the encrypted size; exactly-once is unchanged: the journal and
the file name do not depend on the content). A mailbox that must be encrypted but has no key gets 451
4.7.5 and an error line naming the command that fixes it; nothing is written. After the copies are
written, a message that looks S/MIME-signed is handed to `signed_mail` (certificate collection), which
never fails a delivery.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailbastion import metrics
from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.headers import INTERNAL_PREFIX
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.core.replies import Reply
from mailbastion.core.threads import THREADS, Workers
from mailbastion.core.verdict import Folder
from mailbastion.core.xtext import xtext_decode
from mailbastion.mailbox.journal import DeliveredJournal, PairState, is_queue_id
from mailbastion.mailbox.maildir import MaildirStore, QuotaExceeded
from mailbastion.smtp.handler import BaseHandler

__all__ = ["AT_REST_FAILED", "AT_REST_NO_KEY", "LINK_EXTENSION", "AtRestEncryption", "LmtpHandler", "MailboxDirectory",
           "RecipientPlan", "SignedMailHook"]

log = logging.getLogger("mailbastion.mda")

LINK_EXTENSION = "XMAILBASTION"
_LINK_PARAMS = frozenset({"XQUEUEID", "XFOLDER", "XBOUNCEOF"})
MAX_BOUNCE_SENDERS = 50
_FOLDERS = {f.value.upper(): f for f in Folder}
_INTERNAL = INTERNAL_PREFIX.lower()
# RFC 3463 X.7.5 "cryptographic failure ... necessary information such as key was not available".
AT_REST_NO_KEY = Reply(451, "4.7.5", "Mailbox must be stored encrypted and has no key yet, try again later")
AT_REST_FAILED = Reply(451, "4.7.5", "Message could not be encrypted for storage, try again later")


class MailboxDirectory(Protocol):
    """What the MDA asks the directory (`mailbastion.directory.Directory` satisfies it).

    Optional: `resolve_from_memory(address) -> Resolution | None`, the answer when the directory can give
    it without blocking (from memory, no database read due), else None. A local account it answers is
    accepted at RCPT on the event loop, without a hop to a worker thread; everything else (None, an
    alias, a refusal, an error) is asked through `resolve` in a thread, as without it."""

    def resolve(self, address: Address) -> Resolution: ...

    def is_local_domain(self, domain: str) -> bool: ...

    def mailbox_quota(self, address: Address) -> int | None: ...


class AtRestEncryption(Protocol):
    """Encryption of stored copies (`crypto.at_rest.AtRestSealer` satisfies it)."""

    def applies(self, mailbox: Address) -> bool: ...

    def seal(self, mailbox: Address, message: bytes) -> bytes:
        """The copy as it is to be stored. Raises LookupError when the mailbox has no usable key."""
        ...


class SignedMailHook(Protocol):
    """Called after delivery with a message that looks S/MIME-signed (`crypto.collect.CertificateCollector`)."""

    def collect(self, message: bytes) -> object: ...


@dataclass(frozen=True, slots=True)
class RecipientPlan:
    rcpt: Address  # as the client wrote it
    mailboxes: tuple[Address, ...]  # local mailboxes it reaches


@dataclass(eq=False)
class _Session:
    plans: list[RecipientPlan] = field(default_factory=list)
    bounce_of: tuple[str, ...] = ()  # XBOUNCEOF, read at MAIL


def _is_verified(peer: PeerInfo) -> bool:
    return peer.tls is not None and peer.tls.client_verified


def _severity(reply: Reply) -> int:
    return 2 if reply.is_temporary else (1 if reply.is_permanent else 0)


def _combine(results: list[Reply]) -> Reply:
    """One reply for a recipient that reached several mailboxes: a temporary failure wins (the sender
    retries; with a queue id the copies already made are not made again), then success, then refusal."""
    if any(r.is_temporary for r in results):
        return next(r for r in results if r.is_temporary)
    if any(r.is_positive for r in results):
        return replies.DELIVERED
    return max(results, key=_severity) if results else replies.TEMP_FAILURE


def bounce_senders(value: str) -> tuple[str, ...] | None:
    """XBOUNCEOF's value -> our senders, or None when it is not a short list of xtext addresses."""
    try:
        senders = tuple(xtext_decode(item) for item in value.split(","))
    except ValueError:
        return None
    if not 0 < len(senders) <= MAX_BOUNCE_SENDERS or not all("@" in s and len(s) <= 320 for s in senders):
        return None
    return senders


class LmtpHandler(BaseHandler):
    """The MDA's handler. One instance serves every LMTP session of the process."""

    def __init__(self, directory: MailboxDirectory, store: MaildirStore, *,
                 journal: DeliveredJournal | None = None, at_rest: AtRestEncryption | None = None,
                 signed_mail: SignedMailHook | None = None) -> None:
        self.directory = directory
        self.store = store
        self.journal = journal
        self.at_rest = at_rest
        self.signed_mail = signed_mail
        # Called with (our sender, a line) for each refusal a DSN the gateway matched reports (XBOUNCEOF).
        self.bounce_listeners: list[Callable[[str, str], None]] = []
        self._sessions: dict[str, _Session] = {}
        self._from_memory: Callable[[Address], Resolution | None] | None = getattr(
            directory, "resolve_from_memory", None)
        self._workers = Workers(THREADS, name="mda")

    def extensions(self, peer: PeerInfo) -> Mapping[str, frozenset[str]]:
        return {LINK_EXTENSION: _LINK_PARAMS} if _is_verified(peer) else {}

    def close(self) -> None:
        self._workers.close()
        if self.journal is not None:
            self.journal.close()

    # -- the transaction -----------------------------------------------------------------------

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        params = dict(envelope.mail_params)
        if _LINK_PARAMS & params.keys() and not _is_verified(peer):
            return replies.PARAM_NOT_RECOGNIZED  # the engine refuses them first; never trust them unverified
        if "XQUEUEID" in params and not is_queue_id(params["XQUEUEID"]):
            return replies.PARAM_SYNTAX.with_text("XQUEUEID must be letters and digits")
        if "XFOLDER" in params and params["XFOLDER"].upper() not in _FOLDERS:
            return replies.PARAM_SYNTAX.with_text("XFOLDER must be INBOX or Junk")
        bounce_of = bounce_senders(params["XBOUNCEOF"]) if "XBOUNCEOF" in params else ()
        if bounce_of is None:
            return replies.PARAM_SYNTAX.with_text("XBOUNCEOF must be a list of xtext addresses")
        self._sessions[peer.session_id] = _Session(bounce_of=bounce_of)
        return replies.SENDER_OK

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        session = self._sessions.setdefault(peer.session_id, _Session())
        found = await self._plan(rcpt)
        if isinstance(found, Reply):
            return found
        session.plans.append(found)
        return replies.RECIPIENT_OK

    async def _plan(self, rcpt: Address) -> RecipientPlan | Reply:
        """The local mailboxes `rcpt` reaches, or the reply refusing it (RCPT's decision)."""
        if rcpt.is_bare_postmaster:
            return replies.UNKNOWN_USER  # the gateway maps <Postmaster> before it spools
        mailboxes = self._local_from_memory(rcpt)
        if mailboxes is None:
            try:
                mailboxes = await self._workers.run(self._mailboxes_of, rcpt)
            except Exception:  # a directory that cannot answer must not turn into 550 for a real user
                log.exception("directory lookup failed for %s", rcpt)
                return replies.TEMP_FAILURE
        if not mailboxes:
            log.info("lmtp rcpt refused rcpt=%s", rcpt)
            return replies.UNKNOWN_USER
        return RecipientPlan(rcpt, mailboxes)

    def _local_from_memory(self, addr: Address) -> tuple[Address, ...] | None:
        """The mailbox of a local account when the directory answers without blocking; None: ask in a thread."""
        if self._from_memory is None:
            return None
        try:
            res = self._from_memory(addr)
        except Exception:  # the thread path asks again, and logs what fails there
            return None
        return (res.address,) if res is not None and res.kind is ResolutionKind.LOCAL else None

    def _mailboxes_of(self, addr: Address) -> tuple[Address, ...]:
        res = self.directory.resolve(addr)
        if res.kind is ResolutionKind.LOCAL:
            return (res.address,)
        if res.kind is ResolutionKind.ALIAS:
            local = tuple(t for t in res.targets if self.directory.is_local_domain(t.domain))
            for t in res.targets:
                if t not in local:
                    log.warning("alias %s: remote target %s is not delivered by the MDA", addr, t)
            return local
        return ()

    async def on_reset(self, peer: PeerInfo) -> None:
        self._sessions.pop(peer.session_id, None)

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self._sessions.pop(peer.session_id, None)

    # -- the message ---------------------------------------------------------------------------

    async def on_lmtp_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Sequence[Reply]:
        session = self._sessions.pop(peer.session_id, None)
        plans = session.plans if session is not None else []
        bounce_of = session.bounce_of if session is not None else ()
        if len(plans) != len(envelope.recipients):
            log.error("lmtp: %d recipient plans for %d recipients", len(plans), len(envelope.recipients))
            return [replies.TEMP_FAILURE] * len(envelope.recipients)
        params = dict(envelope.mail_params)
        out = await self._write(plans, envelope.sender_text, message, self._folder(params), params.get("XQUEUEID"),
                                bounce_of)
        metrics.replies("internal", "lmtp", out)
        return out

    async def deliver_here(self, *, sender: Address | None, recipients: Sequence[Address], message: SpooledMessage,
                           folder: Folder, queue_id: str, bounce_of: tuple[str, ...] = ()) -> list[Reply]:
        """The link's transaction without the link, for the queue manager of the all-in-one process
        (`direct.py`): what `MAIL FROM:<sender> XQUEUEID= XFOLDER= [XBOUNCEOF=]`, a RCPT per recipient and
        `BDAT LAST` get from a verified gateway, one reply per recipient in order (a refused RCPT's reply in
        its place). The same look-ups, journal (exactly once per queue id), folders and copies."""
        if not is_queue_id(queue_id):
            return [replies.PARAM_SYNTAX.with_text("XQUEUEID must be letters and digits")] * len(recipients)
        found = [await self._plan(rcpt) for rcpt in recipients]
        plans = [f for f in found if isinstance(f, RecipientPlan)]
        written = await self._write(plans, "" if sender is None else str(sender), message, folder, queue_id,
                                    bounce_of) if plans else []
        metrics.replies("internal", "direct", written)  # as "lmtp" counts: the replies after the data
        after_data = iter(written)
        return [f if isinstance(f, Reply) else next(after_data) for f in found]

    async def _write(self, plans: list[RecipientPlan], sender: str, message: SpooledMessage, folder: Folder,
                     queue_id: str | None, bounce_of: tuple[str, ...]) -> list[Reply]:
        """The copies for accepted recipients (after DATA): one reply per plan, in order."""
        block = message.header.where(lambda f: not f.name.startswith(_INTERNAL))
        boxes = list(dict.fromkeys(box for plan in plans for box in plan.mailboxes))
        results, fresh = await self._workers.run(self._deliver_all, boxes, sender, block, folder, queue_id)
        out = [_combine([results[box] for box in plan.mailboxes]) for plan in plans]
        if fresh and bounce_of:
            self._bounced(bounce_of, queue_id)
        return out

    def _bounced(self, senders: Sequence[str], queue_id: str | None) -> None:
        for sender in senders:
            log.info("lmtp bounce queue_id=%s of=%s (matched by the gateway)", queue_id, sender)
            for listener in self.bounce_listeners:
                try:
                    listener(sender, f"bounce delivered as {queue_id} (matched by the gateway)")
                except Exception:  # counting a sign must never cost the delivery
                    log.exception("bounce listener failed for %s", sender)

    @staticmethod
    def _folder(params: dict[str, str]) -> Folder:
        """The verdict's folder as the gateway sent it (XFOLDER, checked in on_mail); INBOX without it."""
        return _FOLDERS[params["XFOLDER"].upper()] if "XFOLDER" in params else Folder.INBOX

    def _deliver_all(self, boxes: list[Address], sender: str, block: HeaderBlock, folder: Folder,
                     queue_id: str | None) -> tuple[dict[Address, Reply], bool]:
        """Write one copy per mailbox (blocking: runs in a worker thread). Also says whether a copy was
        written now (not only found delivered by an earlier try of the same queue id)."""
        out: dict[Address, Reply] = {}
        todo = boxes
        if queue_id is not None and self.journal is not None:
            todo = []
            for box in boxes:
                state = self.journal.state(queue_id, box.normalized)
                if state is PairState.BEGUN and self.store.find_copy(queue_id, box, folder=folder) is not None:
                    self.journal.done(queue_id, box.normalized)  # a crash came between the file and the record
                    state = PairState.DONE
                if state is PairState.DONE:
                    log.info("lmtp already delivered queue_id=%s mailbox=%s: not written again", queue_id, box)
                    out[box] = replies.DELIVERED
                else:
                    todo.append(box)
            self.journal.begin(queue_id, (b.normalized for b in todo))
        body = block.to_bytes().replace(b"\r\n", b"\n")  # the Unix Maildir convention: LF line ends
        looped = {v.strip("<> ").lower() for v in block.values("Delivered-To")}
        for box in todo:
            out[box] = self._deliver_one(box, sender, body, folder, queue_id, looped)
        if self.signed_mail is not None and any(r.is_positive for r in out.values()) \
                and "signed" in (block.first("content-type") or "").lower():
            self.signed_mail.collect(body)
        return out, any(out[box].is_positive for box in todo)

    def _deliver_one(self, box: Address, sender: str, body: bytes, folder: Folder, queue_id: str | None,
                     looped: set[str]) -> Reply:
        if box.normalized in looped:
            log.warning("lmtp loop: message already delivered to %s", box)
            return replies.LOOP_DETECTED
        data = f"Return-Path: <{sender}>\nDelivered-To: {box}\n".encode() + body
        sealed = ""
        if self.at_rest is not None and self.at_rest.applies(box):
            try:
                data = self.at_rest.seal(box, data)
            except LookupError as exc:
                log.error("lmtp deferred mailbox=%s: %s", box, exc)
                return AT_REST_NO_KEY
            except Exception:  # a broken key or library: never store the copy in clear instead
                log.exception("lmtp deferred mailbox=%s: encryption at rest failed", box)
                return AT_REST_FAILED
            sealed = " at_rest=encrypted"
        try:
            path = self.store.deliver_file(box, data, folder=folder, quota_bytes=self.directory.mailbox_quota(box),
                                           queue_id=queue_id if self.journal is not None else None)
        except QuotaExceeded as exc:
            log.info("lmtp deferred mailbox=%s: %s", box, exc)
            return replies.MAILBOX_FULL
        except OSError:
            log.exception("lmtp delivery to %s failed", box)
            return replies.INSUFFICIENT_STORAGE
        if queue_id is not None and self.journal is not None:
            self.journal.done(queue_id, box.normalized)
        if log.isEnabledFor(logging.INFO):
            log.info("lmtp delivered queue_id=%s mailbox=%s folder=%s size=%d file=%s%s", queue_id or "-", box,
                     self.store.junk_folder if folder is Folder.JUNK else "INBOX", len(data), os.path.basename(path),
                     sealed)
        return replies.DELIVERED
