"""The report address: users forward (as attachment or inline) or bounce (redirect) mail that got
through to `report-spam@<our domain>`, or a wrongly flagged one to `report-ham@<our domain>`, and the
classifier learns it.

    learner = ReportLearner(store, is_local_domain=recipients.is_local_domain)
    learner.label_for(rcpt)                             -> True (spam) / False (ham) / None (not a report address)
    learner.authorised(peer, envelope, from_domain, symbols) -> (ok, reason)
    learner.learn_from_report(raw, is_spam=True, reporter="alice@example.com") -> ReportOutcome

Poisoning guard: only our own people may teach the model. A report counts when the client is
authenticated or in relay.networks (submission, internal relays), or when both the envelope sender and
the From domain are ours and the pipeline saw a passing DMARC result (`trusted_symbols`). Outsiders who
write to the report address are refused (symbol SPAM_REPORT_REFUSED) and nothing is learned.

Unwrapping: every `message/rfc822` part (to MAX_MESSAGE_DEPTH attached messages deep) is a reported
message (forward as attachment); a message with `Resent-*` headers is itself the reported one
(bounce/redirect; the Resent-* fields are dropped); an inline forward is rebuilt from the header block
after the "Forwarded message" / "Original Message" marker. A report without any of these is logged and not
learned.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import logging
import quopri
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.mime_parts import MAX_MESSAGE_DEPTH, parse_message
from mailbastion.core.peer import PeerInfo
from mailbastion.spam.store import ModelStore
from mailbastion.spam.training import strip_mbox_line

log = logging.getLogger("mailbastion.spam.report")

_INLINE_MARKER = re.compile(
    rb"(?im)^[ \t>]*-{2,}\s*(?:Forwarded message|Original Message|Message transf\S* |Weitergeleitete Nachricht)"
    rb"[^\n]*\n"
)
_HEADER_LINE = re.compile(rb"^[ \t>]*([A-Za-z][A-Za-z0-9-]{0,40}):[ \t]*(.*)$")


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    learned: int  # messages learned from this report
    how: str  # "attachment" | "bounce" | "inline" | "none"


def unwrap(raw: bytes) -> tuple[list[bytes], str]:
    """The reported messages inside a report, and how they were wrapped."""
    raw = strip_mbox_line(raw)
    msg = parse_message(raw)  # a report nested past the recursion limit is read as one opaque part
    attached: list[bytes] = []
    for part in _attached(msg):
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, email.message.Message):
            continue
        try:
            data = inner.as_bytes()
        except RecursionError:  # parsed, but nested too deep to write back
            continue
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte in ("base64", "quoted-printable"):  # not allowed by RFC 2046 §5.2.1, but clients do it
            try:
                data = base64.b64decode(data, validate=False) if cte == "base64" else quopri.decodestring(data)
            except (binascii.Error, ValueError):
                continue
        attached.append(data)
    if attached:
        return attached, "attachment"
    if any(k.lower().startswith("resent-") for k in msg):
        for key in {k for k in msg if k.lower().startswith("resent-")}:
            del msg[key]
        try:
            return [msg.as_bytes()], "bounce"
        except RecursionError:
            return [], "none"
    inline = _inline(msg)
    if inline is not None:
        return [inline], "inline"
    return [], "none"


def _attached(msg: email.message.Message) -> Iterator[email.message.Message]:
    """The message/rfc822 parts in document order, down to MAX_MESSAGE_DEPTH attached messages (as
    core/mime_parts reads them): deeper is crafted nesting, each level another message to learn and to write
    back, at a quadratic cost."""
    todo = [(msg, 0)]
    while todo:
        part, depth = todo.pop()
        if part.get_content_type() == "message/rfc822":
            yield part
            depth += 1
        payload = part.get_payload()
        if isinstance(payload, list) and depth < MAX_MESSAGE_DEPTH:
            todo += [(p, depth) for p in reversed(payload) if isinstance(p, email.message.Message)]


def _inline(msg: email.message.Message) -> bytes | None:
    body: bytes | None = None
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                body = data
                break
    if not body:
        return None
    m = _INLINE_MARKER.search(body)
    if not m:
        return None
    lines = body[m.end():].replace(b"\r\n", b"\n").split(b"\n")
    headers: list[bytes] = []
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines):
        hm = _HEADER_LINE.match(lines[i])
        if not hm:
            break
        headers.append(hm.group(1) + b": " + hm.group(2).strip())
        i += 1
    if not headers:
        return None
    rest = b"\n".join(line[1:].lstrip() if line.startswith(b">") else line for line in lines[i:])
    return b"\r\n".join(headers) + b"\r\n\r\n" + rest


class ReportLearner:
    def __init__(self, store: ModelStore, *, is_local_domain: Callable[[str], bool],
                 spam_local_part: str = "report-spam", ham_local_part: str = "report-ham",
                 trusted_symbols: Iterable[str] = ("DMARC_POLICY_ALLOW",)) -> None:
        self.store = store
        self.is_local_domain = is_local_domain
        self.spam_local_part, self.ham_local_part = spam_local_part.lower(), ham_local_part.lower()
        self.trusted_symbols = frozenset(trusted_symbols)

    def label_for(self, rcpt: Address) -> bool | None:
        """True for the spam report address of one of our domains, False for the ham one, else None."""
        if not self.is_local_domain(rcpt.domain):
            return None
        local = rcpt.unquoted_local.lower()
        if local == self.spam_local_part:
            return True
        if local == self.ham_local_part:
            return False
        return None

    def authorised(self, peer: PeerInfo, envelope: Envelope, from_domain: str,
                   symbols: Iterable[str]) -> tuple[bool, str]:
        if peer.authenticated_as is not None:
            return True, f"authenticated {peer.authenticated_as}"
        if peer.is_relay_network:
            return True, f"relay network {peer.ip}"
        sender_domain = envelope.sender.domain if envelope.sender else ""
        if sender_domain and self.is_local_domain(sender_domain) and from_domain == sender_domain:
            if self.trusted_symbols & set(symbols):
                return True, f"own domain {from_domain} with DMARC pass"
            return False, f"own domain {from_domain} without DMARC pass"
        return False, f"outside sender {sender_domain or '<>'}"

    def learn_from_report(self, raw: bytes, *, is_spam: bool = True, reporter: str = "") -> ReportOutcome:
        """Unwrap and learn what a report carries. Call only for an authorised reporter. Raises
        RuntimeError when no site model path is configured."""
        messages, how = unwrap(raw)
        if not messages:
            log.warning("spam.report nothing to learn reporter=%s (no attached, bounced or inline message)",
                        reporter)
            return ReportOutcome(0, how)
        self.store.learn_many(messages, is_spam=is_spam, source="report", note=f"{how} by {reporter}")
        log.info("spam.report learned=%d as=%s how=%s reporter=%s", len(messages), "spam" if is_spam else "ham",
                 how, reporter)
        return ReportOutcome(len(messages), how)
