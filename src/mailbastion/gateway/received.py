"""The trace header we add (RFC 5321 §4.4), with the TLS session recorded (RFC 8314 §4.3 style).

    Received: from mx.example.org (mx.example.org [192.0.2.7])
            (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
            by gw.example.net (mailbastion) with ESMTPS id 4f2a9c01
            for <alice@example.net>; Sat, 28 Nov 2026 03:10:00 +0000
"""

from __future__ import annotations

import re
from email.utils import formatdate

from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.peer import PeerInfo

__all__ = ["count_received", "protocol_name", "received_header"]

_UNSAFE = re.compile(r"[^\x21-\x7e]")


def protocol_name(peer: PeerInfo, *, esmtp: bool) -> str:
    """RFC 3848 `with` keywords: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA."""
    if not esmtp:
        return "SMTP"
    suffix = ("S" if peer.tls else "") + ("A" if peer.authenticated_as else "")
    return "ESMTP" + suffix


def _token(text: str) -> str:
    return _UNSAFE.sub("?", text)[:255] or "unknown"


def received_header(
    peer: PeerInfo, envelope: Envelope, *, by: str, esmtp: bool = True, trace_id: str = "", when: float | None = None
) -> str:
    """The value of one `Received:` header (folded, without the name). Names the recipient only when
    there is exactly one, so a copy does not disclose the others (as Postfix does)."""
    ip = f"IPv6:{peer.ip}" if ":" in peer.ip else peer.ip
    remote = _token(peer.hostname) if peer.hostname else "unknown"
    lines = [f"from {_token(peer.helo)} ({remote} [{ip}])"]
    if peer.tls is not None:
        bits = f" ({peer.tls.bits}/{peer.tls.bits} bits)" if peer.tls.bits else ""
        lines.append(f"(using {_token(peer.tls.version)} with cipher {_token(peer.tls.cipher)}{bits})")
    trace = f" id {_token(trace_id)}" if trace_id else ""
    lines.append(f"by {by} (mailbastion) with {protocol_name(peer, esmtp=esmtp)}{trace}")
    date = formatdate(when, localtime=False, usegmt=False)
    if len(envelope.recipients) == 1:
        lines.append(f"for <{envelope.recipients[0]}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(date)
    return "\r\n\t".join(lines)


def count_received(header: HeaderBlock | bytes) -> int:
    """How many Received fields a message's header section holds (the hop count, RFC 5321 §6.3),
    as the one header parser splits it."""
    block = header if isinstance(header, HeaderBlock) else HeaderBlock.parse(header)
    return block.count("received")
