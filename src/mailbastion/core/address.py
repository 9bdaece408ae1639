"""Mail addresses as values, parsed strictly from SMTP paths (RFC 5321 §4.1.2).

What parses is a plain `local@domain` mailbox. Everything a relay trick leans on is either a parse
error (source routes, `a@b@c`, empty parts) or visible on the value (`is_quoted`, `has_route_chars`,
`is_literal`) so that the relay check can refuse it on purpose rather than by accident.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from mailbastion.core.errors import MalformedAddress

# RFC 5321 §4.5.3.1: 64 octets local part, 255 octets domain, 256 octets path.
MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
# RFC 6531 §3.3: with SMTPUTF8, atext also takes any non-ASCII character, and nothing else.
_UTEXT = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])"
_DOT_ATOM_UTF8 = re.compile(rf"^{_UTEXT}+(?:\.{_UTEXT}+)*$")
_QUOTED = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$')
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_LITERAL = re.compile(r"^\[[^\[\]\\]*\]$")


class AddressError(MalformedAddress):
    """An address that is not a valid RFC 5321 mailbox."""


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox. `domain` is lower-case and IDNA-encoded (A-labels); `local` keeps its case."""

    local: str
    domain: str
    is_quoted: bool = False
    is_literal: bool = False

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local

    @property
    def normalized(self) -> str:
        """The form used for lookups: local part folded to lower case, domain lower case."""
        if not self.domain:
            return self.unquoted_local.lower()
        return f"{self.unquoted_local.lower()}@{self.domain}"

    @property
    def is_bare_postmaster(self) -> bool:
        """`<Postmaster>` without a domain (RFC 5321 §4.1.1.3): the postmaster of the server itself.
        Only `parse_path(..., allow_postmaster=True)` makes one; the receiving role decides which
        mailbox that is."""
        return not self.domain

    @property
    def unquoted_local(self) -> str:
        if not self.is_quoted:
            return self.local
        return re.sub(r"\\(.)", r"\1", self.local[1:-1])

    @property
    def has_route_chars(self) -> bool:
        """True when the local part holds characters that old relays treated as routing:
        `%` (percent hack), `!` (bang path), `@` or `:` (only possible when quoted)."""
        inner = self.unquoted_local
        return any(c in inner for c in "%!@:")

    def without_tag(self, separator: str = "+") -> Address:
        """`user+tag@d` → `user@d` (plus-addressing). Quoted local parts are left alone."""
        if self.is_quoted or separator not in self.local:
            return self
        base = self.local.split(separator, 1)[0]
        if not base:
            return self
        return Address(base, self.domain)


def _normalize_domain(domain: str) -> tuple[str, bool]:
    if not domain:
        raise AddressError("empty domain")
    if domain.startswith("["):
        if not _LITERAL.match(domain):
            raise AddressError("malformed address literal")
        return domain.lower(), True
    if domain.endswith("."):
        raise AddressError("domain ends with a dot")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError as exc:
        raise AddressError(f"domain is not valid IDNA: {exc}") from None
    ascii_domain = ascii_domain.lower()
    if len(ascii_domain) > MAX_DOMAIN:
        raise AddressError("domain too long")
    labels = ascii_domain.split(".")
    if len(labels) < 2 and ascii_domain != "localhost":
        raise AddressError("domain must be fully qualified")
    if not all(_LABEL.match(label) for label in labels):
        raise AddressError("invalid domain name")
    if labels[-1].isdigit():
        # RFC 3696 §2: no all-numeric TLD; `u@192.0.2.1` is an IP pretending to be a domain.
        raise AddressError("invalid domain name (numeric top-level label)")
    return ascii_domain, False


def parse_address(text: str, *, allow_utf8: bool = False) -> Address:
    """Parse `local@domain`. Raises AddressError with a reason a human can read.

    Results are remembered (the last `PARSED_CACHE` distinct texts): a site's addresses come back on
    every message, and each hop of the path (edge, queue manager, forwarding, auto-reply, MDA) parses
    them again. `Address` is immutable, so a remembered one is as good as a new one; an error is not
    remembered and is raised again each time."""
    return _parse_cached(text, allow_utf8)


PARSED_CACHE = 4096


@functools.lru_cache(maxsize=PARSED_CACHE)
def _parse_cached(text: str, allow_utf8: bool) -> Address:
    return _parse_address(text, allow_utf8=allow_utf8)


def _parse_address(text: str, *, allow_utf8: bool = False) -> Address:
    if not text:
        raise AddressError("empty address")
    if len(text.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise AddressError("address too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise AddressError("control character in address")
    if not allow_utf8 and not text.isascii():
        raise AddressError("non-ASCII address without SMTPUTF8")
    if text.startswith('"'):
        end = _closing_quote(text)
        local, rest = text[: end + 1], text[end + 1 :]
        if not rest.startswith("@"):
            raise AddressError("missing @ after quoted local part")
        domain = rest[1:]
        if not _QUOTED.match(local) and not (allow_utf8 and not local.isascii()):
            raise AddressError("invalid quoted local part")
        quoted = True
    else:
        if text.count("@") != 1:
            raise AddressError("an address has exactly one @ outside quotes")
        local, domain = text.split("@")
        quoted = False
        if not local:
            raise AddressError("empty local part")
        if not (_DOT_ATOM.match(local) or (allow_utf8 and not local.isascii() and _DOT_ATOM_UTF8.match(local))):
            raise AddressError("invalid local part")
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise AddressError("local part too long")
    norm_domain, literal = _normalize_domain(domain)
    return Address(local, norm_domain, is_quoted=quoted, is_literal=literal)


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise AddressError("unterminated quoted local part")


def parse_path(text: str, *, allow_utf8: bool = False, allow_null: bool = False,
               allow_postmaster: bool = False) -> Address | None:
    """Parse an SMTP path as given to MAIL FROM or RCPT TO (with or without angle brackets).

    Returns None for the null path `<>` when `allow_null`. With `allow_postmaster` (RCPT TO), the
    domain-less `<Postmaster>` in any case is accepted (RFC 5321 §4.1.1.3, §4.5.1) and returned as
    `Address("Postmaster", "")` (`is_bare_postmaster`). A source route (`<@a,@b:u@c>`, RFC 5321
    §4.1.2, deprecated) is refused, not stripped: nobody legitimate sends one today.
    """
    text = text.strip()
    if text.startswith("<"):
        if not text.endswith(">"):
            raise AddressError("unbalanced angle brackets")
        text = text[1:-1]
    elif text.endswith(">"):
        raise AddressError("unbalanced angle brackets")
    if text == "":
        if allow_null:
            return None
        raise AddressError("null path not allowed here")
    if text.startswith("@"):
        raise AddressError("source routes are not accepted")
    if allow_postmaster and text.lower() == "postmaster":
        return Address("Postmaster", "")
    return parse_address(text, allow_utf8=allow_utf8)
