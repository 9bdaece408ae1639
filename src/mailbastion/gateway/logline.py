"""One structured log line per message (logger `mailbastion.smtp`), key=value, greppable.

    queue_id=4f2a9c01 session=1a2b3c stage=data client=192.0.2.7 helo=mx.example.org
    tls=TLSv1.3/TLS_AES_256_GCM_SHA384 sender=a@example.org recipients=b@example.net size=5120
    action=accept score=1.50 reply=250 symbols=MISSING_MID=0.5,HELO_NOT_FQDN(x)=1

Values holding spaces or quotes are double-quoted (logfmt), so one line always parses back.
"""

from __future__ import annotations

import logging

from mailbastion import metrics
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Forced, Symbol, Verdict

__all__ = ["format_kv", "log_message"]

log = logging.getLogger("mailbastion.smtp")


def _value(v: object) -> str:
    text = str(v)
    if text == "" or any(c in text for c in ' "=\t\r\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'
    return text


def format_kv(pairs: dict[str, object]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in pairs.items() if v is not None)


def log_message(
    peer: PeerInfo,
    envelope: Envelope | None,
    *,
    stage: str,
    action: str,
    reply: Reply,
    verdict: Verdict | None = None,
    forced: Forced | None = None,
    symbols: tuple[Symbol, ...] | list[Symbol] = (),
    rcpt: Address | None = None,
    size: int | None = None,
    queue_id: str = "",
    extra: dict[str, object] | None = None,
) -> None:
    metrics.message("gateway", stage, action)  # counted whether or not the line is logged
    if not log.isEnabledFor(logging.INFO):
        return
    tls = f"{peer.tls.version}/{peer.tls.cipher}" if peer.tls else "none"
    pairs: dict[str, object] = {
        "queue_id": queue_id or "-",
        "session": peer.session_id,
        "stage": stage,
        "client": peer.ip,
        "client_name": peer.hostname,
        "helo": peer.helo or "-",
        "tls": tls,
    }
    if envelope is not None:
        pairs["sender"] = envelope.sender_text or "<>"
        pairs["recipients"] = ",".join(str(r) for r in envelope.recipients) or "-"
    if rcpt is not None:
        pairs["rcpt"] = str(rcpt)
    pairs["size"] = size
    pairs["action"] = action
    if verdict is not None:
        pairs["score"] = f"{verdict.score:.2f}"
        forced = verdict.forced or forced
    pairs["forced_by"] = forced.by if forced else None
    pairs["reply"] = f"{reply.code} {reply.status}".strip()
    if verdict is not None:
        pairs["symbols"] = ",".join(str(s) for s in verdict.symbols) or "-"
    else:
        pairs["symbols"] = ",".join(str(s) for s in symbols) or "-"
    pairs.update(extra or {})
    log.info(format_kv(pairs))
