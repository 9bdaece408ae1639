"""What identifies a reported message, and whether a stored message is a copy of it.

    fp = Fingerprint.of(raw)                        # From address, subject, Message-ID, URLs
    reason = fp.matches(Fingerprint.of(other), is_ours=directory.is_local_domain)
    # "message-id" | "sender+subject" | "url https://evil.example/login" | None

A copy is the same message when (issue 13) it has
- the same Message-ID (RFC 5322 §3.6.4: unique per message; a phishing run often reuses one per batch), or
- the same From address *and* the same subject (decoded, spaces folded, case ignored), or
- a URL in common, full URL with a path (not a bare host), whose host is not one of ours nor on the ignore
  list (`phish_report.ignore_url_hosts`: DTD and schema hosts every HTML message names). A copy whose
  From is one of our own domains is never matched by URL alone: a colleague's "is this real?" forward
  quotes the link and must stay in the colleague's mailbox.

A subject alone never matches (another sender may use the same words), nor a sender alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mailbastion.core.header_block import HeaderBlock
from mailbastion.spam.features import decode_header, extract_bytes, url_host

__all__ = ["Fingerprint", "display_subject", "normal_subject", "normal_url"]

_SPACES = re.compile(r"\s+")
MAX_URLS = 200


def normal_subject(subject: str | None) -> str:
    return _SPACES.sub(" ", subject or "").strip().casefold()


def normal_url(url: str) -> str | None:
    """`HTTPS://Evil.Example:443/Login?x=1#top` -> `https://evil.example/Login?x=1`; None for what is not
    an http(s) URL with a host and a path (a bare host names a site, not a message)."""
    text = url.strip()
    if text.lower().startswith("www."):
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.path in ("", "/") and not parts.query:
        return None
    host = parts.hostname.lower().rstrip(".")
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    netloc = host if port in (None, default) else f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def display_subject(raw: bytes) -> str:
    """The Subject decoded for people (RFC 2047), "" when none."""
    return decode_header(HeaderBlock.parse(raw[:65536]).first("subject") or "")


def _message_id(block: HeaderBlock) -> str:
    value = (block.first("message-id") or "").strip()
    m = re.search(r"<([^<>\s]+)>", value)
    return (m.group(1) if m else value).lower()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    from_address: str  # lower case; "" when none
    subject: str  # normalised (normal_subject)
    message_id: str  # lower case, without angle brackets; "" when none
    urls: frozenset[str]  # normal_url of each http(s) URL of the text and HTML parts

    @staticmethod
    def of(raw: bytes, *, ignore_hosts: Iterable[str] = ()) -> Fingerprint:
        """Never raises for a malformed message: what cannot be read is left empty."""
        features = extract_bytes(raw)
        ignored = {h.lower() for h in ignore_hosts}
        urls = set()
        for url in features.urls[:MAX_URLS]:
            norm = normal_url(url)
            if norm is not None and url_host(norm) not in ignored:
                urls.add(norm)
        return Fingerprint(features.from_address.lower(), normal_subject(features.subject),
                           _message_id(HeaderBlock.parse(raw)), frozenset(urls))

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    @property
    def is_usable(self) -> bool:
        """Can anything match it? A message with no Message-ID, no sender+subject and no URL cannot be swept."""
        return bool(self.message_id or (self.from_address and self.subject) or self.urls)

    def matches(self, other: Fingerprint, *, is_ours: Callable[[str], bool] = lambda d: False) -> str | None:
        """Why `other` is a copy of this message ("message-id", "sender+subject", "url <url>"), or None."""
        if self.message_id and self.message_id == other.message_id:
            return "message-id"
        if self.from_address and self.subject and (self.from_address, self.subject) == (other.from_address,
                                                                                          other.subject):
            return "sender+subject"
        if other.from_domain and is_ours(other.from_domain):
            return None  # our own people's mail is never taken on a shared link alone
        common = sorted(u for u in self.urls & other.urls if not is_ours(url_host(u)))
        return f"url {common[0]}" if common else None
