"""What a delivery agent is, and the three things it can say about each recipient (Stalwart Status).

    Delivered(response)   final: the next hop took responsibility ("250 2.0.0 Ok")
    TempFailed(error)     try again later ("452 4.2.2 Mailbox full", "connection refused")
    PermFailed(error)     final: never try again; the sender gets a DSN ("550 5.1.1 unknown user")

An agent delivers the message to every recipient of the record that is not final yet
(`record.pending`) and returns one outcome per such address. It never raises for one recipient's
failure; when the next hop cannot be reached at all it returns TempFailed for each of them. The queue
manager treats a missing outcome, or an exception escaping an agent, as a temporary failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from mailbastion.spool.record import QueueRecord


@dataclass(frozen=True, slots=True)
class Delivered:
    response: str = ""


@dataclass(frozen=True, slots=True)
class TempFailed:
    error: str


@dataclass(frozen=True, slots=True)
class PermFailed:
    error: str


DeliveryOutcome = Delivered | TempFailed | PermFailed


class DeliveryAgent(Protocol):
    async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        """Deliver `message` to each of `record.pending`; return {address: outcome} for each of them.
        Never raises for one recipient's failure."""
        ...


def outcome_of_reply(code: int, text: str) -> DeliveryOutcome:
    """Map an SMTP/LMTP reply to an outcome: 2xx delivered, 4xx temporary, everything else permanent."""
    line = f"{code} {text}".strip()
    if 200 <= code < 300:
        return Delivered(line)
    if 400 <= code < 500:
        return TempFailed(line)
    return PermFailed(line)


def all_temp_failed(record: QueueRecord, error: str) -> dict[str, DeliveryOutcome]:
    """The same temporary failure for every pending recipient (next hop unreachable)."""
    return {r.address: TempFailed(error) for r in record.pending}


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_status(error: str, *, default: str) -> str:
    """The RFC 3463 status code inside a reply text ("550 5.1.1 ..." -> "5.1.1"), else `default`."""
    m = _ENHANCED.search(error)
    return m.group(0) if m else default


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """"host", "host:port", "[v6addr]:port" or "[host]" -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else default_port
