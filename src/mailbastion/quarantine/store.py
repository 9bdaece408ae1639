"""The quarantine: messages held for the administrator, each with the verdict that held it.

Layout (readable only by the service: the folder is 0700, every file 0600):

    <root>/tmp/                     written here first, fsynced
    <root>/msg/<id>.eml             the message bytes exactly as received
    <root>/msg/<id>.json            envelope, client, verdict (action, score, forced_by, symbols), engines,
                                    reasons, size, sha256, is_malware; written after the .eml, so a
                                    .json names a complete entry

`put` is the QuarantineSink port the gateway calls; `QuarantineRelease` (release.py) re-injects and
deletes with an audit record. Ids are sortable by time: `20261128T031400Z-3f9a1c2b`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbastion.core.address import Address, parse_address
from mailbastion.core.encoded_words import decoded_text
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.verdict import Verdict
from mailbastion.durable import fsync_dir, write_durably

__all__ = ["QuarantineEntry", "QuarantineStore", "UnknownQuarantineId"]

_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_VIRUS = re.compile(r"^AV_[A-Z]+_VIRUS$")


class UnknownQuarantineId(KeyError):
    def __str__(self) -> str:
        return f"no quarantined message with id {self.args[0]!r}"


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: str
    received_at: str
    client: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    sha256: str
    subject: str
    action: str
    score: float
    forced_by: str
    symbols: tuple[dict[str, Any], ...]
    engines: tuple[str, ...]
    reasons: tuple[str, ...]
    is_malware: bool

    @staticmethod
    def from_json(data: dict[str, Any]) -> QuarantineEntry:
        v = data.get("verdict", {})
        return QuarantineEntry(
            data["id"], data.get("received_at", ""), data.get("client", ""), data.get("sender", ""),
            tuple(data.get("recipients", ())), int(data.get("size", 0)), data.get("sha256", ""),
            data.get("subject", ""), v.get("action", ""), float(v.get("score", 0.0)), v.get("forced_by", ""),
            tuple(v.get("symbols", ())), tuple(data.get("engines", ())), tuple(data.get("reasons", ())),
            bool(data.get("is_malware", False)),
        )

    def envelope(self) -> Envelope:
        sender = parse_address(self.sender) if self.sender else None
        return Envelope(sender, tuple(parse_address(r) for r in self.recipients))


def _subject_of(message: bytes) -> str:
    """The Subject, RFC 2047 decoded, read by the one header parser from the first 64 KiB. Not the stdlib's
    policy.default: it parses a crafted Content-Type in quadratic time (10 s for 64 KiB), and this runs for
    every held message while the client waits."""
    return decoded_text(HeaderBlock.parse(message[:65536]).first("subject") or "")[:200]


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    return {
        "action": verdict.action.name.lower(),
        "score": verdict.score,
        "forced_by": verdict.forced.by if verdict.forced else "",
        "reply": str(verdict.reply) if verdict.reply else "",
        "symbols": [{"name": s.name, "detail": s.detail, "score": s.score, "group": s.group} for s in verdict.symbols],
    }


def _engines(verdict: Verdict) -> list[str]:
    names: list[str] = []
    for s in verdict.symbols:
        m = re.match(r"^AV_([A-Z]+)_VIRUS$", s.name)
        engine = m.group(1).lower() if m else (s.detail.split(":", 1)[0] if s.name.startswith("AV_") else "")
        if engine and re.fullmatch(r"[a-z0-9_-]{1,32}", engine) and engine not in names:
            names.append(engine)
    return names


class QuarantineStore:
    """Implements the QuarantineSink port. Safe for one process; ids never collide across processes."""

    def __init__(self, root: Path | str, *, retention_days: int = 30) -> None:
        self.root = Path(root)
        self.retention_days = retention_days
        self.tmp = self.root / "tmp"
        self.msg = self.root / "msg"
        old = os.umask(0o077)
        try:
            for d in (self.root, self.tmp, self.msg):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(d, 0o700)
        finally:
            os.umask(old)

    @staticmethod
    def from_settings(settings: Any) -> QuarantineStore:
        # A top-level [quarantine] section wins when the schema has one (shared with the spam filter).
        q = getattr(settings, "quarantine", None) or settings.antivirus.quarantine
        return QuarantineStore(settings.path(q.dir), retention_days=q.retention_days)

    # ---- writing

    def _write_file(self, final: Path, data: bytes) -> None:
        tmp = self.tmp / (final.name + f".{secrets.token_hex(4)}.tmp")
        write_durably(tmp, data, exclusive=True)
        os.replace(tmp, final)

    def put_sync(self, envelope: Envelope, message: bytes, verdict: Verdict, *, client: str) -> str:
        import hashlib

        qid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
        symbols = verdict_record(verdict)
        record = {
            "id": qid,
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "client": client,
            "sender": envelope.sender_text,
            "recipients": [str(r) for r in envelope.recipients],
            "size": len(message),
            "sha256": hashlib.sha256(message).hexdigest(),
            "subject": _subject_of(message),
            "verdict": symbols,
            "engines": _engines(verdict),
            "reasons": [f"{s.name}({s.detail})" if s.detail else s.name for s in verdict.symbols],
            "is_malware": any(_VIRUS.match(s.name) for s in verdict.symbols),
        }
        self._write_file(self.msg / f"{qid}.eml", message)
        self._write_file(self.msg / f"{qid}.json", json.dumps(record, indent=2).encode())
        fsync_dir(self.msg)
        return qid

    async def put(self, envelope: Envelope, message: bytes, verdict: Verdict, *, client: str) -> str:
        """Durably hold a message for the administrator; return its quarantine id."""
        return await asyncio.to_thread(self.put_sync, envelope, message, verdict, client=client)

    # ---- reading

    def _path(self, qid: str, ext: str) -> Path:
        if not _ID.match(qid):
            raise UnknownQuarantineId(qid)
        return self.msg / f"{qid}.{ext}"

    def get(self, qid: str) -> QuarantineEntry:
        try:
            return QuarantineEntry.from_json(json.loads(self._path(qid, "json").read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UnknownQuarantineId(qid) from None

    def message(self, qid: str) -> bytes:
        try:
            return self._path(qid, "eml").read_bytes()
        except FileNotFoundError:
            raise UnknownQuarantineId(qid) from None

    def list(self, *, limit: int | None = None) -> builtins.list[QuarantineEntry]:
        """Newest first."""
        out: list[QuarantineEntry] = []
        for p in sorted(self.msg.glob("*.json"), reverse=True):
            try:
                out.append(QuarantineEntry.from_json(json.loads(p.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError):
                continue
            if limit is not None and len(out) >= limit:
                break
        return out

    def remove(self, qid: str) -> None:
        """Remove an entry's files (json first: an .eml without .json is not an entry). Not audited here:
        QuarantineRelease.delete/release audit, then call this."""
        self.get(qid)
        self._path(qid, "json").unlink(missing_ok=True)
        self._path(qid, "eml").unlink(missing_ok=True)
        fsync_dir(self.msg)

    def expired(self, now: float | None = None) -> builtins.list[str]:
        limit = (now or time.time()) - self.retention_days * 86400
        out = []
        for p in self.msg.glob("*.json"):
            try:
                if p.stat().st_mtime < limit:
                    out.append(p.stem)
            except OSError:
                continue
        return sorted(out)


def recipients_of(entry: QuarantineEntry) -> tuple[Address, ...]:
    return tuple(parse_address(r) for r in entry.recipients)
