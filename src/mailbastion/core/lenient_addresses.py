"""What lenient, legacy address parsers read from a header (Python's `email.utils` before its 2024 strict
mode): the view of a mail client that is not strict, as the From checks, the spam features and the
encryption policy model it.

CPython's fix of CVE-2023-27043 made `getaddresses`/`parseaddr` strict by default (3.13, and backported:
Debian's 3.11.2 has it, 3.11.7 from python.org has not). Strict parsing reads nothing from an ambiguous
header, which is the opposite of what these views are for, and it made our verdicts depend on the
interpreter's patch level. Every caller goes through here, so every Python reads the same.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable

try:
    email.utils.getaddresses([], strict=False)  # type: ignore[call-arg]
    _LENIENT: dict[str, bool] = {"strict": False}
except TypeError:  # an interpreter without the strict mode is lenient already
    _LENIENT = {}


def getaddresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs, as a lenient parser reads them. A value whose comments nest deeper than
    the parser's recursion can go ("(a (a (a ..." a thousand deep: the stdlib parser recurses per level) reads as
    no address, ("", ""), as any unreadable value does; the other values are read as usual."""
    values = list(values)
    try:
        return email.utils.getaddresses(values, **_LENIENT)  # type: ignore[call-arg]
    except RecursionError:
        out: list[tuple[str, str]] = []
        for value in values:
            try:
                out.extend(email.utils.getaddresses([value], **_LENIENT))  # type: ignore[call-arg]
            except RecursionError:
                out.append(("", ""))
        return out


def parseaddr(value: str) -> tuple[str, str]:
    """(display name, address) of the first address, as a lenient parser reads it; ("", "") when there is
    none or the value nests too deep to read (see `getaddresses`)."""
    try:
        return email.utils.parseaddr(value, **_LENIENT)  # type: ignore[call-arg]
    except RecursionError:
        return ("", "")


__all__ = ["getaddresses", "parseaddr"]
