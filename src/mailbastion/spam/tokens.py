"""The classifier's view of a message: a bag of prefixed tokens, hashed later by scikit-learn.

    tokens(feats, symbols=("R_SPF_FAIL",)) -> ["s:free", "w:money", "u:example.org", "sym:R_SPF_FAIL", ...]

Prefixes keep the sources apart: `s:` subject words, `w:` body words (text or visible HTML), `b:` body word
pairs, `h:<name>:` header value words, `hn:` header names present, `rh:` registrable domains of the hosts
in Received fields, `u:`/`ud:` URL hosts and their registrable part, `a:`/`ae:` attachment types and
extensions, `st:` structure, `sym:` what the authentication checks of the pipeline saw. Work is bounded:
at most MAX_BODY_CHARS of body text.

What is left out, on purpose: fields the receiving side adds (Delivered-To, X-Status, Return-Path ...) say
who collected the mail, not who sent it; numbers and dates in header values (Received timestamps, version
numbers) never recur. A model that learns them learns its training corpus, not spam. Text is NFKC-folded
first, so "𝐅𝐑𝐄𝐄" (mathematical bold) and "ＦＲＥＥ" (full width) are the word "free".
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable

from mailbastion.spam.domains import registrable_domain
from mailbastion.spam.features import MessageFeatures

MAX_BODY_CHARS = 20000
_WORD_RE = re.compile(r"[^\W\d_][\w'$€£-]{1,24}|\$\d[\d.,]*|\d{1,3}%")
_HEADER_WORD_RE = re.compile(r"[^\W\d_][\w.-]{1,39}")  # starts with a letter: no dates, times, versions
_RECEIVED_HOST_RE = re.compile(r"(?i)\b(?:from|by)\s+([a-z0-9-]+(?:\.[a-z0-9-]+)+)")
# Header fields whose words say something about the sender's software and route.
_HEADER_FIELDS = frozenset({
    "from", "reply-to", "to", "cc", "return-path", "sender", "message-id", "x-mailer", "user-agent",
    "content-type", "content-transfer-encoding", "mime-version", "list-id", "list-unsubscribe", "precedence",
    "x-priority", "x-msmail-priority", "organization", "errors-to", "importance",
})
# Fields a receiving MTA, MDA or mail client adds: they describe the collector, not the sender.
DELIVERY_FIELDS = frozenset({
    "return-path", "delivered-to", "envelope-to", "x-original-to", "x-original-recipient", "delivery-date",
    "status", "x-status", "x-keywords", "x-uid", "x-uidl", "lines", "content-length", "x-mozilla-status",
    "x-mozilla-status2", "x-imap", "x-evolution", "x-virus-scanned", "x-virus-status", "x-spam-status",
    "x-spam-level", "x-spam-flag", "x-spam-score", "x-spam-report", "x-spam-checker-version",
    "x-spam-prev-subject", "x-received", "received-spf", "authentication-results", "arc-authentication-results",
    "x-loop", "x-authentication-warning", "x-from_", "x-mailbastion-junk",
})
# Authentication outcomes of the pipeline worth learning from (family prefixes).
AUTH_SYMBOL_PREFIXES = ("R_SPF_", "R_DKIM_", "DMARC_", "ARC_", "RBL_", "DNSBL_")


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1" if n == 1 else "few" if n < 5 else "some" if n < 20 else "many"


def fold(text: str) -> str:
    """NFKC and lower case: compatibility forms (mathematical bold, full width, ligatures) become plain."""
    return unicodedata.normalize("NFKC", text).lower() if not text.isascii() else text.lower()


def tokens(feats: MessageFeatures, symbols: Iterable[str] = ()) -> list[str]:
    out: list[str] = []
    add = out.append
    subject = feats.subject
    if subject is None:
        add("st:nosubject")
    else:
        out.extend("s:" + w for w in _WORD_RE.findall(fold(subject)))
        letters = [c for c in subject if c.isalpha()]
        if len(letters) > 8 and sum(c.isupper() for c in letters) > 0.7 * len(letters):
            add("st:subject_caps")
    body = feats.body_text[:MAX_BODY_CHARS]
    words = _WORD_RE.findall(fold(body))
    out += ["w:" + w for w in words]  # list comprehensions: a thousand tokens a message, built without a generator
    out += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for name, value in feats.raw_headers:
        if name in DELIVERY_FIELDS:
            continue
        add("hn:" + name)
        if name == "received":
            out.extend("rh:" + registrable_domain(h) for h in _RECEIVED_HOST_RE.findall(value[:300])[:2])
        elif name in _HEADER_FIELDS:
            out.extend(f"h:{name}:{w}" for w in _HEADER_WORD_RE.findall(fold(value))[:30])
    if feats.from_display:
        out.extend("fd:" + w for w in _WORD_RE.findall(fold(feats.from_display)))
    for host in feats.url_hosts[:50]:
        add("u:" + host)
        add("ud:" + registrable_domain(host))
    for a in feats.attachments[:20]:
        add("a:" + a.content_type)
        if a.extension:
            add("ae:" + a.extension)
    if feats.has_html_part and not feats.has_text_part:
        add("st:html_only")
    if feats.has_html_part and feats.has_text_part:
        add("st:alternative")
    if feats.hidden_text:
        add("st:hidden_text")
    add("st:urls_" + _bucket(len(feats.urls)))
    add("st:attach_" + _bucket(len(feats.attachments)))
    add("st:len_" + _bucket(len(body) // 500))
    if not feats.has_message_id:
        add("st:no_msgid")
    if not feats.has_date:
        add("st:no_date")
    for name in symbols:
        if name.startswith(AUTH_SYMBOL_PREFIXES):
            add("sym:" + name)
    return out
