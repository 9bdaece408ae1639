"""RFC 2047 encoded words, read by the standard library at a bounded cost.

`email.header.decode_header` finds encoded words with a pattern that, from every "=?", searches to the end of
the line for "?=". A field of unterminated words ("=?a?q?x " ten thousand times) is quadratic: 64 KB took 2 s
in the portal's message view and 0.13 s per 16 KiB field in the spam stage, so a 1 MiB header section of them
cost seconds. Every reader of encoded words goes through `decode_words`, which gives the standard library's
reading, or, when that search would read more than MAX_SEARCH characters, the value as plain text. A well-formed
word costs its own length (the "?=" is near), so no honest field comes near the bound: the largest of the
13,432 corpus messages' fields (Exchange Online's X-Microsoft-Antispam-Message-Info, a run of words) reads 8,309."""

from __future__ import annotations

import bisect
import email.errors
import email.header
import re

MAX_SEARCH = 100_000  # characters the pattern may read, summed over the words' starts
_OPEN = re.compile(r"=\?")
_CLOSE = re.compile(r"\?=")


def search_cost(value: str) -> int:
    """About what finding the encoded words of `value` costs the standard library's pattern, in characters
    read: from each "=?" to the first "?=" after it on its line, or to the line's end. Stops counting past
    MAX_SEARCH."""
    if "=?" not in value:
        return 0
    total = 0
    for line in value.splitlines():
        if "=?" not in line:
            continue
        closes = [m.start() for m in _CLOSE.finditer(line)]
        for start in (m.start() for m in _OPEN.finditer(line)):
            i = bisect.bisect_left(closes, start + 2)
            total += (closes[i] if i < len(closes) else len(line)) - start
            if total > MAX_SEARCH:
                return total
    return total


def decode_words(value: str) -> list[tuple[bytes | str, str | None]]:
    """`email.header.decode_header(value)`, or `[(value, None)]` when its cost would pass MAX_SEARCH. Raises
    what the standard library raises on a malformed word (callers keep their own fallbacks)."""
    if search_cost(value) > MAX_SEARCH:
        return [(value, None)]
    return email.header.decode_header(value)


def decoded_text(value: str) -> str:
    """The value with its encoded words decoded, as a mail reader shows it; the value as written when a word
    cannot be read. A non-ASCII charset name ("=?\u00fc?q?x?=") raises CharsetError, a MessageError that is
    not a HeaderParseError: caught here once, it made the From check and the look-alike check fail, the
    portal's quarantine page answer 500 and the daily digest stop."""
    try:
        return str(email.header.make_header(decode_words(value)))
    except (ValueError, LookupError, UnicodeError, AssertionError, email.errors.MessageError):
        return value
