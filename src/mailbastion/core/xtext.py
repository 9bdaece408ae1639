"""xtext (RFC 3461 §4): how ENVID, ORCPT and our LMTP link's parameter values travel in MAIL and RCPT.

    xtext("a+b=c d")       -> "a+2Bb+3Dc+20d"
    xtext("x,y", ",")      -> "x+2Cy"          (also escape what the caller splits a list on)
    xtext_decode("a+2Bb")  -> "a+b"            (ValueError for anything that is not xtext)

Characters outside printable ASCII travel as the "+HH" of their UTF-8 bytes (RFC 6533's use for
internationalised addresses), and decode back to the same text.
"""

from __future__ import annotations

import re

__all__ = ["xtext", "xtext_decode"]

_XTEXT = re.compile(r"^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$")
_PIECE = re.compile(r"([^+]+)|\+([0-9A-F]{2})")


def xtext(value: str, also: str = "") -> str:
    """`value` as xtext: "+" and "=", controls, space, non-ASCII (as UTF-8 bytes) and the characters of
    `also` become "+HH"."""
    extra = set(also.encode("ascii"))
    return "".join(chr(b) if 33 <= b <= 126 and b not in (43, 61) and b not in extra else f"+{b:02X}"
                   for b in value.encode("utf-8"))


def xtext_decode(value: str) -> str:
    """Printable ASCII except `+` and `=`, and `+XX` (upper-case hex) escapes of UTF-8 bytes. Raises
    ValueError for anything else (an escape sequence that is not UTF-8 included)."""
    if not _XTEXT.match(value):
        raise ValueError("malformed xtext")
    if "+" not in value:
        return value
    raw = bytearray()
    for plain, hexchar in _PIECE.findall(value):
        raw += bytes.fromhex(hexchar) if hexchar else plain.encode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("malformed xtext (not UTF-8)") from None
