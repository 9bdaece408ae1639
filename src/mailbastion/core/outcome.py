"""What a delivery agent says about each recipient, as values (Stalwart's per-recipient Status).

    Delivered(reply, remote, handoff)   final: the next hop took responsibility ("250 2.0.0 Ok")
    Deferred(reply, remote, link_down)  try again later ("452 4.2.2 Mailbox full", connection refused)
    Failed(reply, remote)               final: never try again; the sender may get a DSN ("550 5.1.1 ...")

The reply is a `Reply` (basic code, RFC 3463 enhanced status, text) parsed once, where it was read
from the wire (`parse_reply`), or made by the agent for a local condition (a refused connection, a
timeout). Nothing downstream reads a status code back out of text: the queue record keeps the fields
and the DSN builder writes them. `remote` names the host that gave the reply ("" when we made it).

`Handoff` says what a success means for RFC 3464/3461 reporting:
    DELIVERED    final delivery into a mailbox (our MDA): a success DSN says Action: delivered
    RELAYED      to a next hop that does not offer DSN: a success DSN says Action: relayed
    TRANSFERRED  to a next hop that offered DSN; NOTIFY/ORCPT went with it, it reports from now on

`Deferred.link_down`: the next hop is our own MDA and refused or dropped the connection (it is starting,
restarting, or was killed). The queue manager retries such recipients within seconds, never on the
Internet back-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailbastion.core.replies import Reply

__all__ = [
    "Deferred", "Delivered", "DeliveryOutcome", "Failed", "Handoff", "describe", "is_enhanced_status",
    "outcome_of", "parse_reply",
]


class Handoff(StrEnum):
    DELIVERED = "delivered"
    RELAYED = "relayed"
    TRANSFERRED = "transferred"


@dataclass(frozen=True, slots=True)
class Delivered:
    reply: Reply
    remote: str = ""
    handoff: Handoff = Handoff.DELIVERED


@dataclass(frozen=True, slots=True)
class Deferred:
    reply: Reply
    remote: str = ""
    link_down: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    reply: Reply
    remote: str = ""


DeliveryOutcome = Delivered | Deferred | Failed


def outcome_of(reply: Reply, *, remote: str = "", handoff: Handoff = Handoff.DELIVERED) -> DeliveryOutcome:
    """2xx delivered, 4xx deferred, anything else (5xx, or a code out of place) failed."""
    if 200 <= reply.code < 300:
        return Delivered(reply, remote, handoff)
    if 400 <= reply.code < 500:
        return Deferred(reply, remote)
    return Failed(reply, remote)


def is_enhanced_status(token: str, code: int | None = None) -> bool:
    """An RFC 3463 status code "class.subject.detail" (class 2, 4 or 5; subject and detail 1-3 digits),
    whose class agrees with the basic `code` when one is given (RFC 2034 §4)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] not in ("2", "4", "5"):
        return False
    if not all(p.isascii() and p.isdigit() and 1 <= len(p) <= 3 for p in parts[1:]):
        return False
    return code is None or str(code)[:1] == parts[0]


def parse_reply(code: int, lines: Sequence[str]) -> Reply:
    """A reply as read from the wire: `lines` are the texts after "NNN-" / "NNN ", in order.

    RFC 2034 §4: a server that offers ENHANCEDSTATUSCODES starts the text of every line with the same
    status code. When the first line starts with one that agrees with `code`, it becomes `status` and is
    taken off each line that repeats it; otherwise `status` is "" and the text is kept whole."""
    first = lines[0] if lines else ""
    token = first.split(" ", 1)[0]
    if not is_enhanced_status(token, code):
        return Reply(code, "", "\n".join(lines))
    texts = []
    for line in lines:
        head, _, rest = line.partition(" ")
        texts.append(rest if head == token else line)
    return Reply(code, token, "\n".join(texts))


def describe(reply: Reply) -> str:
    """One line for logs, `queue list` and DSN diagnostics: "550 5.1.1 user unknown"."""
    text = " ".join(reply.text.split())
    return " ".join(p for p in (str(reply.code), reply.status, text) if p)
