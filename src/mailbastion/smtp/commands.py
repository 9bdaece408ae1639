"""Parsing of command arguments into values: paths, ESMTP parameters, xtext, BDAT sizes. Pure functions.

    parse_mail("FROM:<a@b.example> SIZE=10 RET=HDRS", allowed=..., max_size=...)  -> MailRequest | Reply
    parse_rcpt("TO:<c@d.example> NOTIFY=SUCCESS,FAILURE", smtputf8=False, dsn=True) -> (Address, RecipientDsn) | Reply
    parse_bdat("4096 LAST")                                                    -> (4096, True) | None

A parameter is accepted only when the session advertised the extension that defines it (`allowed`,
built per EHLO by the session); anything else is 555 5.5.4 (RFC 5321 §4.1.1.11). Nothing here
decides policy or touches the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbastion.core import replies
from mailbastion.core.address import Address, AddressError, parse_path
from mailbastion.core.envelope import NOTIFY_VALUES, RecipientDsn
from mailbastion.core.replies import Reply
from mailbastion.core.xtext import xtext_decode

__all__ = ["MailRequest", "parse_bdat", "parse_mail", "parse_params", "parse_rcpt", "split_path", "xtext_decode"]

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 5321 §4.1.2 esmtp-keyword
_ADDR_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_MAX_ENVID = 100  # RFC 3461 §4.4
_MAX_ORCPT = 500  # RFC 3461 §4.2


@dataclass(frozen=True, slots=True)
class MailRequest:
    """MAIL FROM, parsed. `params` holds every parameter as given (name upper-cased, value raw)."""

    sender: Address | None
    body_8bitmime: bool = False
    smtputf8: bool = False
    size: int | None = None
    ret: str | None = None
    envid: str | None = None
    requiretls: bool = False
    params: tuple[tuple[str, str], ...] = ()


def split_path(arg: str, keyword: str) -> tuple[str, list[str]] | None:
    """`FROM:<a@b> SIZE=10` → (`<a@b>`, [`SIZE=10`]). Tolerates a space after the colon (common,
    though RFC 5321 has none). A `>` inside a quoted local part does not end the path. None: syntax."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword):].lstrip()
    if not rest.startswith("<"):
        path, _, params = rest.partition(" ")
        return (path, params.split()) if path else None
    i, quoted = 1, False
    while i < len(rest):
        c = rest[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            tail = rest[i + 1:]
            if tail and not tail.startswith(" "):
                return None
            return rest[: i + 1], tail.split()
        i += 1
    return None


def parse_params(items: list[str]) -> dict[str, str | bool] | None:
    """`["SIZE=10", "SMTPUTF8"]` → {"SIZE": "10", "SMTPUTF8": True}. None: a malformed or repeated keyword."""
    out: dict[str, str | bool] = {}
    for item in items:
        key, eq, value = item.partition("=")
        name = key.upper()
        if not _KEYWORD.match(key) or (eq and not value) or name in out:
            return None
        out[name] = value if eq else True
    return out


def _is_number(text: str, digits: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= digits


def _flag(params: dict[str, str | bool], name: str) -> bool | Reply:
    value = params.pop(name, False)
    if value is not False and value is not True:
        return replies.PARAM_SYNTAX.with_text(f"{name} takes no value")
    return value


def parse_mail(arg: str, *, allowed: frozenset[str], max_size: int) -> MailRequest | Reply:
    """MAIL FROM's argument. `allowed`: the parameter names this session may use (empty for a
    client that said HELO: then any parameter is a syntax error, RFC 5321 §4.1.1.2)."""
    split = split_path(arg, "FROM:")
    if split is None:
        return replies.PARAM_SYNTAX
    path, raw = split
    params = parse_params(raw)
    if params is None or (raw and not allowed):
        return replies.PARAM_SYNTAX
    if any(name not in allowed for name in params):
        return replies.PARAM_NOT_RECOGNIZED
    given = tuple((p.partition("=")[0].upper(), p.partition("=")[2]) for p in raw)
    body = params.pop("BODY", "7BIT")
    if not isinstance(body, str) or body.upper() not in ("7BIT", "8BITMIME"):
        return replies.PARAM_SYNTAX.with_text("BODY must be 7BIT or 8BITMIME")
    smtputf8 = _flag(params, "SMTPUTF8")
    requiretls = _flag(params, "REQUIRETLS")
    if isinstance(smtputf8, Reply):
        return smtputf8
    if isinstance(requiretls, Reply):
        return requiretls
    size = params.pop("SIZE", None)
    if size is not None:
        if not isinstance(size, str) or not _is_number(size, 20):
            return replies.PARAM_SYNTAX.with_text("SIZE must be a number")
        if int(size) > max_size:
            return replies.MESSAGE_TOO_LARGE  # RFC 1870 §6.1
    ret = params.pop("RET", None)
    if ret is not None and (not isinstance(ret, str) or ret.upper() not in ("FULL", "HDRS")):
        return replies.PARAM_SYNTAX.with_text("RET must be FULL or HDRS")  # RFC 3461 §4.3
    envid_raw = params.pop("ENVID", None)
    envid = None
    if envid_raw is not None:
        bad_envid = replies.PARAM_SYNTAX.with_text("ENVID must be xtext of at most 100 characters")
        if not isinstance(envid_raw, str) or len(envid_raw) > _MAX_ENVID:
            return bad_envid
        try:
            envid = xtext_decode(envid_raw)
        except ValueError:
            return bad_envid
    try:
        sender = parse_path(path, allow_utf8=smtputf8, allow_null=True)
    except AddressError as exc:
        return replies.BAD_SENDER_SYNTAX.with_text(f"Bad sender address syntax: {exc}")
    return MailRequest(sender, body_8bitmime=body.upper() == "8BITMIME", smtputf8=smtputf8,
                       size=int(size) if size else None, ret=ret.upper() if isinstance(ret, str) else None,
                       envid=envid, requiretls=requiretls, params=given)


def _notify(value: str | bool) -> tuple[str, ...] | None:
    if not isinstance(value, str):
        return None
    items = tuple(v.upper() for v in value.split(","))
    if not items or any(v not in NOTIFY_VALUES for v in items) or len(set(items)) != len(items):
        return None
    if "NEVER" in items and len(items) > 1:
        return None  # RFC 3461 §4.1: NEVER stands alone
    return items


def _orcpt(value: str | bool) -> str | None:
    if not isinstance(value, str) or len(value) > _MAX_ORCPT:
        return None
    kind, sep, text = value.partition(";")
    if not sep or not _ADDR_TYPE.match(kind) or not text:
        return None
    try:
        return f"{kind.lower()};{xtext_decode(text)}"
    except ValueError:
        return None


def parse_rcpt(arg: str, *, smtputf8: bool, dsn: bool) -> tuple[Address, RecipientDsn] | Reply:
    """RCPT TO's argument. NOTIFY and ORCPT (RFC 3461) only when `dsn` was offered. The domain-less
    `<Postmaster>` parses (RFC 5321 §4.1.1.3); the role maps it."""
    split = split_path(arg, "TO:")
    if split is None:
        return replies.PARAM_SYNTAX
    path, raw = split
    params = parse_params(raw)
    if params is None:
        return replies.PARAM_SYNTAX
    allowed = {"NOTIFY", "ORCPT"} if dsn else set()
    if any(name not in allowed for name in params):
        return replies.PARAM_NOT_RECOGNIZED
    notify: tuple[str, ...] = ()
    if "NOTIFY" in params:
        parsed = _notify(params["NOTIFY"])
        if parsed is None:
            return replies.PARAM_SYNTAX.with_text("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
        notify = parsed
    orcpt = None
    if "ORCPT" in params:
        orcpt = _orcpt(params["ORCPT"])
        if orcpt is None:
            return replies.PARAM_SYNTAX.with_text("ORCPT must be addr-type;xtext")
    try:
        rcpt = parse_path(path, allow_utf8=smtputf8, allow_postmaster=True)
    except AddressError as exc:
        return replies.BAD_RECIPIENT_SYNTAX.with_text(f"Bad recipient address syntax: {exc}")
    if rcpt is None:
        return replies.BAD_RECIPIENT_SYNTAX
    return rcpt, RecipientDsn(notify=notify, orcpt=orcpt)


def parse_bdat(arg: str) -> tuple[int, bool] | None:
    """`4096` or `4096 LAST` (RFC 3030 §2) → (size, last). None: not that syntax."""
    parts = arg.split()
    if not 1 <= len(parts) <= 2 or not _is_number(parts[0], 18):
        return None
    if len(parts) == 2 and parts[1].upper() != "LAST":
        return None
    return int(parts[0]), len(parts) == 2
