"""SASL for the AUTH command (RFC 4954): PLAIN (RFC 4616) and LOGIN, decoded into `Credentials`.

    AUTH PLAIN <base64(authzid NUL authcid NUL password)>      one line, or an empty 334 challenge first
    AUTH LOGIN [<base64(user)>]  334 VXNlcm5hbWU6  334 UGFzc3dvcmQ6   (the de-facto LOGIN mechanism)

The engine runs the exchange and hands the decoded values to the handler's `on_auth`; it never
judges them. `*` as a response cancels (501 5.0.0), undecodable base64 is 501 5.5.2, an unknown
mechanism 504 5.5.4 (RFC 4954 §4, §6). Nothing of the exchange is logged, and `Credentials` keeps
the password out of its repr.

`prompt(challenge)` is the session's: it sends `334 <challenge>` and returns the client's next line
(None when the client is gone).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mailbastion.core import replies
from mailbastion.core.replies import Reply

__all__ = ["MECHANISMS", "Credentials", "decode_plain", "read_credentials"]

MECHANISMS = ("PLAIN", "LOGIN")
_USERNAME = base64.b64encode(b"Username:")
_PASSWORD = base64.b64encode(b"Password:")

Prompt = Callable[[bytes], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Credentials:
    mechanism: str
    authzid: str  # "" when the client asked for no other identity
    authcid: str
    password: str = field(repr=False)


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def _decode(response: bytes) -> bytes:
    """One client response: `*` cancels, `=` is an empty initial response (RFC 4954 §4)."""
    if response == b"*":
        raise _Refused(replies.AUTH_CANCELLED)
    if response == b"=":
        return b""
    try:
        return base64.b64decode(response, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(replies.AUTH_BAD_RESPONSE) from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")  # RFC 4616 §2: UTF-8
    except UnicodeDecodeError:
        raise _Refused(replies.AUTH_BAD_RESPONSE) from None


def decode_plain(message: bytes) -> Credentials:
    """`authzid NUL authcid NUL passwd` (RFC 4616 §2). Raises ValueError when malformed."""
    parts = message.split(b"\x00")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ValueError("PLAIN message must be authzid NUL authcid NUL password")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise ValueError("PLAIN message is not UTF-8") from None
    return Credentials("PLAIN", authzid, authcid, password)


async def read_credentials(arg: str, mechanisms: tuple[str, ...], prompt: Prompt) -> Credentials | Reply | None:
    """Run the exchange for `AUTH <arg>`. Credentials to check, a Reply that ends the exchange
    (syntax, cancel, unknown mechanism), or None when the client went away."""
    name, _, initial = arg.partition(" ")
    mechanism = name.upper()
    if mechanism not in mechanisms or mechanism not in MECHANISMS:
        return replies.AUTH_UNKNOWN_MECHANISM
    initial_bytes = initial.strip().encode("ascii", "replace")
    try:
        if mechanism == "PLAIN":
            response = initial_bytes or await prompt(b"")
            if response is None:
                return None
            try:
                return decode_plain(_decode(response))
            except ValueError:
                return replies.AUTH_BAD_RESPONSE
        user_response = initial_bytes or await prompt(_USERNAME)
        if user_response is None:
            return None
        user = _text(_decode(user_response))
        pass_response = await prompt(_PASSWORD)
        if pass_response is None:
            return None
        password = _text(_decode(pass_response))
        if not user:
            return replies.AUTH_BAD_RESPONSE
        return Credentials("LOGIN", "", user, password)
    except _Refused as refused:
        return refused.reply
