"""Phishing-simulation messages: their templates, and the mark that says "this one is ours".

    templates = load_templates(settings)                    # {id: SimTemplate}, shipped then site
    raw = simulation_message(t, key, campaign=..., token=..., recipient=..., link=..., now=...)
    hit = recognise(raw, settings)                          # SimulationHit, or None: not ours / forged
    campaigns.record_reported(hit, "alice@example.org", settings)  # the campaign records "reported"

The mark is one header field, `X-Training-Simulation: v=1; c=<campaign>; t=<token>; s=<mac>`, where `mac` is
HMAC-SHA256 (RFC 2104) under the deployment's simulation key (`[training] simulation_key`, 32 random bytes,
0600, below data_dir, never leaving the internal host) over the campaign, the token, the Message-ID, the
Subject and the body with all white space removed. So a mark cannot be made from outside without the key,
and a mark copied from a real simulation onto other content (a different link in the body) does not verify.
The field is deliberately not `X-Mailbastion-*` (the MDA strips those): it must survive into the mailbox so
that the report loop can recognise a reported simulation.

How our filter "lets them through": a simulation never passes the inbound gateway. It is committed to our
own spool inside (like the quarantine digest) with the INBOX folder, and travels the spool → LMTP → MDA
path. The gateway never honours the mark: mail from the Internet carrying it is filtered like any other,
and `recognise` refuses a mark that does not verify, so a forged "simulation" is treated as a real phish
by the report loop (learned, its copies quarantined).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import tomllib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbastion.core.header_block import HeaderBlock

if TYPE_CHECKING:
    import datetime as dt

    from mailbastion.config import Settings

__all__ = [
    "MARK_HEADER",
    "SHIPPED_TEMPLATES",
    "SimTemplate",
    "SimulationHit",
    "load_key",
    "load_templates",
    "parse_template",
    "recognise",
    "sign",
    "simulation_message",
    "verify",
]

MARK_HEADER = "X-Training-Simulation"
SHIPPED_TEMPLATES = Path(__file__).parent / "data" / "campaigns"
_WS = re.compile(rb"\s+")
_PARAM = re.compile(r"\s*([a-z])=([A-Za-z0-9_\-]+)\s*")


@dataclass(frozen=True, slots=True)
class SimTemplate:
    id: str
    title: str
    sender: str  # the From field shown (an address under .invalid: nobody can reply to or own it)
    subject: str
    module: str  # assigned to whoever clicks
    signs: tuple[str, ...]  # what the landing page explains
    body: str  # plain text with {link}
    source: str = ""


@dataclass(frozen=True, slots=True)
class SimulationHit:
    """A verified mark: the message is our simulation `campaign`, sent to the holder of `token`."""

    campaign: str
    token: str
    message_id: str


def parse_template(text: str, source: str = "<text>") -> SimTemplate:
    from mailbastion.training.modules import FENCE, ModuleError

    lines = text.splitlines()
    if not lines or lines[0].strip() != FENCE or FENCE not in (x.strip() for x in lines[1:]):
        raise ModuleError(f"{source}: must start with a TOML front matter between '+++' lines")
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    try:
        meta: dict[str, Any] = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise ModuleError(f"{source}: front matter: {exc}") from None
    need = {"id", "title", "from", "subject", "module", "signs"}
    if set(meta) != need:
        raise ModuleError(f"{source}: the front matter needs exactly: {', '.join(sorted(need))}")
    body = "\n".join(lines[end + 1:]).strip() + "\n"
    if "{link}" not in body:
        raise ModuleError(f"{source}: the body must contain {{link}}")
    if not body.isascii():
        raise ModuleError(f"{source}: the body must be ASCII text (it is sent as 7bit plain text)")
    if not all(isinstance(meta[k], str) and meta[k].strip() for k in need - {"signs"}):
        raise ModuleError(f"{source}: id, title, from, subject and module must be texts")
    if not isinstance(meta["signs"], list) or not all(isinstance(s, str) for s in meta["signs"]) or not meta["signs"]:
        raise ModuleError(f"{source}: signs must be a list of texts")
    tid = meta["id"]
    if not tid.replace("-", "").replace("_", "").isalnum():
        raise ModuleError(f"{source}: id: letters, digits, - and _ only")
    return SimTemplate(tid, meta["title"], meta["from"], meta["subject"], meta["module"], tuple(meta["signs"]),
                       body, source)


def load_templates(settings: Settings | None = None) -> dict[str, SimTemplate]:
    folders = [SHIPPED_TEMPLATES]
    if settings is not None:
        folders.append(settings.path(settings.training.templates_dir))
    out: dict[str, SimTemplate] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.md")):
                t = parse_template(path.read_text(encoding="utf-8"), str(path))
                out[t.id] = t
    return out


def load_key(settings: Settings) -> bytes:
    """The simulation key, created (32 random bytes, 0600) at first use."""
    from mailbastion.private_files import create_private_file

    path = settings.path(settings.training.simulation_key)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private_file(path)
        key = secrets.token_bytes(32)
        from mailbastion.durable import write_durably

        write_durably(path, key)
        key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path}: the simulation key is shorter than 32 bytes")
    return key


def _digest(key: bytes, campaign: str, token: str, message_id: str, subject: str, body: bytes) -> str:
    canon = _WS.sub(b"", body.replace(b"\r\n", b"\n"))
    data = b"\0".join([b"v1", campaign.encode(), token.encode(), message_id.strip().encode(),
                       " ".join(subject.split()).encode(), hashlib.sha256(canon).digest()])
    return base64.urlsafe_b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode().rstrip("=")


def sign(key: bytes, *, campaign: str, token: str, message_id: str, subject: str, body: bytes) -> str:
    """The mark's field value."""
    mac = _digest(key, campaign, token, message_id, subject, body)
    return f"v=1; c={campaign}; t={token}; s={mac}"


def verify(raw: bytes, key: bytes) -> SimulationHit | None:
    """The hit when `raw` carries exactly one mark that verifies under `key`; None otherwise."""
    block = HeaderBlock.parse(raw)
    marks = block.values(MARK_HEADER)
    if len(marks) != 1 or block.count("Message-ID") != 1 or block.count("Subject") != 1:
        return None
    params: dict[str, str] = {}
    for part in marks[0].split(";"):
        m = _PARAM.fullmatch(part)
        if m is None:
            return None
        params[m.group(1)] = m.group(2)
    if params.get("v") != "1" or not all(k in params for k in "cts"):
        return None
    message_id = block.first("Message-ID") or ""
    want = _digest(key, params["c"], params["t"], message_id, block.first("Subject") or "", block.body_bytes)
    if not hmac.compare_digest(want, params["s"]):
        return None
    return SimulationHit(params["c"], params["t"], message_id.strip())


def recognise(raw: bytes, settings: Settings) -> SimulationHit | None:
    """For the report loop: is this reported message one of our simulations? (verifies the mark)"""
    try:
        return verify(raw, load_key(settings))
    except (OSError, ValueError):
        return None


def simulation_message(t: SimTemplate, key: bytes, *, campaign: str, token: str, recipient: str, link: str,
                       domain: str, now: dt.datetime) -> bytes:
    """The message one recipient gets: plain 7bit text (so that forwarding keeps the body as it is), signed."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = t.sender
    msg["To"] = recipient
    msg["Subject"] = t.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(t.body.replace("{link}", link), charset="us-ascii", cte="7bit")
    raw = msg.as_bytes()
    block = HeaderBlock.parse(raw)
    mark = sign(key, campaign=campaign, token=token, message_id=block.first("Message-ID") or "",
                subject=block.first("Subject") or "", body=block.body_bytes)
    return block.append_field(f"{MARK_HEADER}: {mark}\r\n".encode()).to_bytes()
