"""The hand-written spam and phishing rules: each looks at the extracted features and names what it saw.

    rules = SpamRules(identity=OwnIdentity.of(["example.com"]), past_hours=96, future_hours=12)
    rules.evaluate(feats, now=time.time(), is_outside=True) -> [Symbol("HTML_LINK_MISMATCH", "paypal.com→evil.test"), ...]

Here: the message's form (headers that bulk-mail software gets wrong, hidden text, HTML without text), the
classic spam phrases and the impersonation of our own domains and users; the phishing rules are in
spam/phishing.py, the word lists in spam/lexicon.py. `RULE_SYMBOLS` lists every name they can emit (the
check declares it, `config/scores/spam.toml` weighs it). Rules never raise on odd input and never do I/O.
GTUBE is not here: it forces a verdict and lives in its own check (`policy/checks/spam_rules.py`).
Missing From/Date/Message-ID are the header check's (`policy/checks/headers.py`), not repeated here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import NamedTuple

from mailbastion.core import lenient_addresses
from mailbastion.core.verdict import Symbol
from mailbastion.spam.domains import has_known_suffix, registrable_domain
from mailbastion.spam.features import MAX_HEADER_CHARS, MAX_PART_BYTES, MessageFeatures
from mailbastion.spam.lexicon import (
    BULK_MAILER_RE,
    FREEMAIL,
    GENERIC_GREETING_RE,
    REMOVAL_CUES,
    SHORTENER_OWNERS,
    SHORTENERS,
    SPAM_PHRASE_RE,
)
from mailbastion.spam.lookalike import OwnIdentity, is_punycode
from mailbastion.spam.phishing import PHISHING_SYMBOLS, phishing_symbols

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAM_PHRASES_MIN = 3  # distinct phrases before SPAM_PHRASES: one "click here" is any newsletter
EXCLAMATION_RUNS_MIN = 2  # runs of "!!" before TEXT_EXCLAMATIONS: one is an enthusiastic colleague
RECIPS_DICTIONARY_MIN = 3  # recipients in dictionary order before RECIPS_DICTIONARY: two in order is chance
RECIPS_DICTIONARY_LONG = 5  # from this many on, neighbours need share only their first letter
_EXCLAMATION_RE = re.compile(r"!{2,}")

RULE_SYMBOLS = frozenset({
    "MISSING_SUBJECT", "EMPTY_SUBJECT", "SUBJECT_ALL_CAPS", "SUBJECT_RANDOM_TAG", "DATE_IN_PAST", "DATE_IN_FUTURE",
    "DATE_MALFORMED", "TO_UNDISCLOSED", "MIME_HTML_ONLY", "HTML_HIDDEN_TEXT", "HTML_IMAGE_ONLY", "URI_SHORTENER",
    "LOOKALIKE_DOMAIN", "PUNYCODE_DOMAIN", "DISPLAY_NAME_IMPERSONATION", "FREEMAIL_REPLYTO", "SPAM_PHRASES",
    "GENERIC_GREETING", "SUBJECT_PADDING", "SUBJECT_ADV", "MID_MALFORMED", "PRIORITY_HIGH", "FROM_NO_PUBLIC_SUFFIX",
    "SUBJECT_JOINED_WORDS", "MSGID_OE_FORGED", "BODY_RANDOM_TAG", "BULK_REMOVAL_NO_LIST", "X_MAILER_RANDOM",
    "TO_IS_SENDER", "RECIPS_DICTIONARY", "TEXT_EXCLAMATIONS", "MUA_OUTLOOK_FORGED", "RCVD_NUMERIC_HELO",
    "RCVD_HELO_DOMAIN_NO_RDNS", "MSGID_ADDED_BY_RELAY", "QP_ENCODED_DOTS", "HTML_FONT_BIG", "MIME_ALT_ONE_SIDED",
    "TO_UNDISCLOSED_OWN_LINKS", "TO_NAME_IS_ADDRESS", "RCVD_HELO_FORGED", "RCVD_RDNS_FORGED", "WEB_SCRIPT_FOREIGN_FROM",
    "MSGID_RATWARE", "MIME_BOUNDARY_RATWARE", "RCVD_DYNAMIC_DIRECT", "X_MAILER_BULK", "HEADER_REPEATED",
    "MIME_BASE64_TEXT",
}) | PHISHING_SYMBOLS

# RFC 5322 §3.3: a date-time ends in a zone ("+0200", or an obsolete name such as "GMT" or "EST"). A universal
# zone named only in a comment ("03:27:38 (GMT)", which some old mailers wrote) is read as that zone: it says
# when, and ham of spamassassin-train carries it; what bulk software writes (no zone, "GMT+1", "Eastern Daylight
# Time", the year "0102") does not pass.
_ZONE_RE = re.compile(r"(?i)(?:[+-]\d{4}|\b(?:UT|UTC|GMT|Z|[ECMP][SD]T|[A-IK-Z])\b|\(\s*(?:UT|UTC|GMT)\s*\))"
                      r"\s*(?:\([^)]*\))?\s*$")
# A numeric zone no place on Earth keeps (more than 14 hours either way, or 60 minutes and more; real zones run
# from -12:00 to +14:00):
# "-1600" is a bulk tool's arithmetic, not a clock (SpamAssassin's INVALID_DATE_TZ_ABSURD).
_NUMERIC_ZONE_RE = re.compile(r"([+-])(\d\d)(\d\d)\s*(?:\([^)]*\))?\s*$")
# Fields RFC 5322 §3.6 allows at most once (From is the header check's MULTIPLE_FROM).
_ONCE_ONLY_FIELDS = ("to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
                     "sender")
# A tag that bulk software appends to make each copy's subject unique: "  29521", "[wxv4m]", "- G3ejrKK7q".
_SUBJECT_TAG_RE = re.compile(r"(?:\s{3,}|\s[-#:.]\s?|[.:]|\s\[|\s\()([A-Za-z0-9-]{4,30})[\])]?\s*$")
_YEAR_RE = re.compile(r"^(?:19|20)\d\d$")
# Bulk tools pad a subject with spaces to push a per-copy tag out of the visible column.
_PADDING_RE = re.compile(r"\S[ \t]{8,}\S")
# The label some laws asked unsolicited advertising to carry ("ADV:", "[ADV]"; Japan's 未承諾広告 of 2002, Korea's
# (광고)): self-declared bulk advertising.
_ADV_RE = re.compile(r"(?i)^\s*(?:[\[(]?adv\s*[:\])]|[\[(]?未承諾広告|[\[(]광고[\])])")
# Words joined by underscores, dots or no-break spaces instead of spaces ("_Your_Reward_Worth_",
# "Transfer__to__your__Bitcoin", "Money.transfer.0.7495.Bitcoin"): written so that no word filter sees the words.
# A reply or forward prefix and [list] tags are set aside first. Lower-case identifiers, host names, file names and
# versions ("tdb_transaction_cancel", "telesp.net.br", "netatalk-1.5.5") are what developers write, and a
# document's name ("Q3_Sales_Report.xlsx") what a colleague sends: left alone, as are addresses and URLs.
_SUBJECT_PREFIX_RE = re.compile(r"(?i)^(?:\s*(?:re|fwd?|aw|wg|tr|enc|rv)\s*:|\s*\[[^\]]*\])*\s*")
_WORD_JOINER_RE = re.compile("[_.\u00a0]+")
_TWO_LETTERS_RE = re.compile(r"[^\W\d_]{2}")
_IDENTIFIER_RE = re.compile(r"[a-z0-9_.\-]+")
_FILE_NAME_RE = re.compile(r".+\.[A-Za-z0-9]{1,4}")
# RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">", each side atext and dots (dot-atom-text; the obsolete
# syntax's quoted id-left and the domain literal of id-right too), no spaces. ":", "," or "<" inside is no msg-id
# any mail software writes ("<Mail2L:2122738:bob@example.com>" from a bulk tool).
_MSGID_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_MSGID_RE = re.compile(rf'^<(?:{_MSGID_ATEXT}|"[^"\\\r\n]*")@(?:{_MSGID_ATEXT}|\[[^\[\]\\\s]*\])>$')
# One bulk tool's Message-ID (2002): a short number, a hyphen and fifteen or more digits, at the sending machine's
# name ("<4123-2200271290225570@waynemain>"); no mail software's ids look like it (SpamAssassin's RATWARE_* idea).
_MSGID_RATWARE_RE = re.compile(r"^<\d{2,6}-\d{15,}@[^<>@\s]+>$")
# A MIME boundary that is one character repeated ("----0000000000000000000000000000"): mail software draws its
# boundaries at random so that no line of the text can equal one; a bulk tool's template writes a constant.
_BOUNDARY_RE = re.compile(r'(?i)\bboundary\s*=\s*"?([^";\s]+)')
# X-Priority 1, X-MSMail-Priority / Importance high, Priority urgent: the sender marks its own mail urgent.
_PRIORITY_RE = re.compile(r"(?i)^\s*(?:1\b|high\b|urgent\b)")
_PRIORITY_FIELDS = ("x-priority", "x-msmail-priority", "importance", "priority")
# Outlook Express's Message-ID: "<" 12 hex "$" 8 hex "$" 8 hex "@" ...; spamware copies it but not the X-Mailer.
_MSGID_OE_RE = re.compile(r"(?i)^<[0-9a-f]{12}\$[0-9a-f]{8}\$[0-9a-f]{8}@")
_MICROSOFT_RE = re.compile(r"(?i)microsoft|outlook|mimeole")
# An X-Mailer that is one run of mixed-case letters and digits names no software: bulk tools fill it at random.
_RANDOM_MAILER_RE = re.compile(r"(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z][A-Za-z0-9]*[A-Z])[A-Za-z0-9]{12,}")
# A per-copy tag at the very end of the body: letters (both cases) and digits around a hyphen ("3442BvLB9-565fAFx").
_BODY_TAG_RE = re.compile(r"(?:^|\s)(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[a-z])(?=[A-Za-z0-9-]*[A-Z])"
                          r"[A-Za-z0-9]{3,}-[A-Za-z0-9-]{4,}\s*$")
# Microsoft's mail clients for Windows mark what they send: Outlook Express (4-6) and Outlook 2000-2003 write
# "X-MimeOLE: Produced By Microsoft MimeOLE ..." beside their X-Mailer, Outlook 2007 and later a Thread-Index. The
# Macintosh editions write neither (easy_ham holds 22 from Outlook Express for Macintosh). An X-Mailer naming one
# of them without either mark is what bulk tools copy (SpamAssassin's FORGED_MUA_OUTLOOK idea).
_MS_CLIENT_RE = re.compile(r"(?i)\bMicrosoft (?:Office )?Outlook\b")
# Trace fields (RFC 5321 §4.4) as MTAs write them, whitespace folded: "from HELO (rdns [ip]) by host ... id X".
_RCVD_NUMERIC_HELO_RE = re.compile(r"(?i)^from\s+(\d{1,3}(?:\.\d{1,3}){3})\s+\(")
_RCVD_CLIENT_RE = re.compile(r"(?i)^from\s+(\S+)\s+\(([^)]*)\)")
_RCVD_BRACKET_IP_RE = re.compile(r"\[(\d{1,3}(?:\.\d{1,3}){3})\]")
_RCVD_QMAIL_IP_RE = re.compile(r"\s*\((\d{1,3}(?:\.\d{1,3}){3})\)")
_RCVD_SMTP_RE = re.compile(r"(?i)\bwith\s+e?smtp")
_RCVD_PLAIN_SMTP_RE = re.compile(r"(?i)\bwith\s+smtp\b")
_RCVD_BY_RE = re.compile(r"(?i)\bby\s+([a-z0-9.-]+)")
_RCVD_ID_RE = re.compile(r"(?i)\bid\s+<?([A-Za-z0-9.-]{6,})")
TRACE_FIELD_MAX_CHARS = 1000  # a real Received field is a few hundred characters; this bounds the rules' work
_LOCAL_HOP_RE = re.compile(r"(?i)\blocalhost\b|\b127\.0\.0\.1\b")
# The reverse DNS name an access provider gives a customer's line, not a mail server's: the address's numbers in
# the name ("200-206-139-106.dsl.telesp.net.br", "c-24-98-25-152.atl.client2.attbi.com") or a word for such a line
# ("n2-190.adsl.co.ru", "pool-7.dialup.isp.example"). SpamAssassin's RDNS_DYNAMIC idea; the ranges Spamhaus PBL lists.
_DYNAMIC_RDNS_RE = re.compile(r"(?i)(?:^|[.-])(?:\d{1,3}[-.]){3}\d{1,3}(?:[.-]|$)"
                              r"|(?:^|[.\d-])(?:a?dsl|dial(?:up|in)?|ppp|pool|dyn(?:amic)?|cable|dhcp|catv|modem|cpe"
                              r"|broadband|cust(?:omer)?|resi?d?|client)[\d.-]")
# Mail that a web server's own account handed to the MTA (a script's mail(), a form mailer): Exim's "from nobody by
# HOST with local", qmail's "invoked by uid N" for the web server's usual accounts (Debian's www-data 33, Red Hat's
# apache 48, FreeBSD's www 80, SUSE's wwwrun 30, nobody 99 / 65534).
_WEB_USER_EXIM_RE = re.compile(r"(?i)^from\s+(?:nobody|apache|www-data|www|httpd|wwwrun)\s+by\s+([a-z0-9.-]+)\s+with\s+local\b")
_WEB_USER_QMAIL_RE = re.compile(r"(?i)^\(qmail\s+\d+\s+invoked\s+by\s+uid\s+(?:30|33|48|80|99|65534)\)")
_QMAIL_MSGID_RE = re.compile(r"(?i)^\s*<[^<>@\s]*\.qmail@([a-z0-9.-]+)>")
_RCVD_FORGED_RDNS = "(may be forged)"
_MSGID_PARTS_RE = re.compile(r"^\s*<([^<>@\s]+)@([^<>@\s]+)>")
# <font size=6>, <font size="+3"> and bigger: 24-point type and up, the poster lettering of bulk HTML. The attributes
# are read up to the next "<" or ">", so thousands of unclosed "<font" stay one linear pass.
_FONT_BIG_RE = re.compile(r"(?i)<font\b[^<>]*?\bsize\s*=\s*[\"']?\s*(?:\+[3-9]|[67])(?![0-9])")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})  # RFC 2606 §2


def _mailboxes(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) of every mailbox in these address fields, read as one list (cut at
    MAX_HEADER_CHARS), the addresses lower case; [] when the list cannot be read."""
    try:
        pairs = lenient_addresses.getaddresses([", ".join(values)[:MAX_HEADER_CHARS]])
    except (TypeError, ValueError, IndexError):
        return []
    return [(n, a.lower()) for n, a in pairs if "@" in a]


def _recipients(feats: MessageFeatures) -> list[str]:
    return [a for _n, a in _mailboxes(feats.header("to") + feats.header("cc"))]  # any number of fields


def _links_only_to_sender(feats: MessageFeatures) -> str:
    """The sender's registrable domain when the message links somewhere and every place it sends the reader is
    on that domain (a freemail domain is nobody's own site); "" otherwise."""
    home = feats.from_registrable_domain
    hosts = feats.reader_hosts
    if not home or home in FREEMAIL or not hosts:
        return ""
    return home if all(registrable_domain(h) == home for h in hosts) else ""


def _dictionary_order(addresses: list[str]) -> bool:
    """Addresses at two or more domains whose local parts are in alphabetical order and each share their first
    two letters with the next one (cpuma@earthlink, cpumatt@trib, cpun@rocket): a list harvested or generated
    in order, not people someone chose to write to. Sorted by local part, then domain, so that one name at several
    providers (jlynch@dreamscape, jlynch@public.nfld) keeps the order; from RECIPS_DICTIONARY_LONG addresses on,
    the first letter is enough to share (a run that goes on from jlytle to jm)."""
    if len(addresses) < RECIPS_DICTIONARY_MIN or len({a.rpartition("@")[2] for a in addresses}) < 2:
        return False
    pairs = [(a.rpartition("@")[0], a.rpartition("@")[2]) for a in addresses]
    if pairs != sorted(set(pairs)):
        return False
    share = 1 if len(pairs) >= RECIPS_DICTIONARY_LONG else 2
    return all(a[0][:share] == b[0][:share] for a, b in pairwise(pairs))


def _looks_random(tag: str) -> bool:
    """A token no one writes: digits only (not a year), letters and digits mixed, or no vowels at all."""
    core = tag.replace("-", "")
    if not core.isalnum() or _YEAR_RE.match(core):
        return False
    if core.isdigit():
        return len(core) >= 4
    if any(c.isdigit() for c in core):
        return True
    letters = core.lower()
    inner_caps = sum(c.isupper() for c in core[1:])
    return (len(letters) >= 5 and not any(c in "aeiouy" for c in letters)) or (inner_caps >= 3 and core != core.upper())


def _public_ipv4(text: str) -> bool:
    try:
        return ipaddress.IPv4Address(text).is_global
    except ValueError:
        return False


def _loopback(text: str) -> bool:
    """Whether `text` is a loopback IPv4 address (a trace field's "[999.1.2.3]" is none)."""
    try:
        return ipaddress.IPv4Address(text).is_loopback
    except ValueError:
        return False


def _trace_fields(feats: MessageFeatures) -> list[str]:
    """The message's Received fields, each on one line (at most 30: a loop's are all alike) and cut at
    TRACE_FIELD_MAX_CHARS, so that a crafted field of a megabyte costs what a real one does."""
    return [" ".join(v[: 2 * TRACE_FIELD_MAX_CHARS].split())[:TRACE_FIELD_MAX_CHARS] for v in feats.header("received")[:30]]


class TraceClient(NamedTuple):
    """The client a trace field records: the name it greeted with, its address, whether the relay found a
    reverse DNS name for it, whether the field tells HELO from EHLO ("with SMTP" / "with ESMTP"), and that
    reverse DNS name ("" without one)."""
    helo: str
    ip: str
    named: bool
    tells_helo: bool
    rdns: str = ""

    @property
    def dynamic(self) -> bool:
        """Whether its reverse DNS name is an access provider's name for a customer line (_DYNAMIC_RDNS_RE)."""
        return bool(self.rdns) and bool(_DYNAMIC_RDNS_RE.search(self.rdns))


def _trace_client(field_: str) -> TraceClient | None:
    """The client of a trace field, in the forms MTAs write (None for a form not recognised): sendmail and
    Postfix "from HELO (rdns [ip])" ("([ip])", "(unknown [ip])", "(IDENT:user@[ip])" without a name); Exim
    "from rdns ([ip] helo=HELO)" ("[ip]" without); qmail "from rdns (HELO x) (ip)" ("unknown" without), which
    writes "with SMTP" whichever greeting the client used."""
    m = _RCVD_CLIENT_RE.match(field_)
    if m is None:
        return None
    name, inner = m.group(1).lower(), m.group(2).strip().lower()
    address = _RCVD_BRACKET_IP_RE.search(inner) or _RCVD_BRACKET_IP_RE.fullmatch(name)  # Exim: "from [ip] (helo=x)"
    ip = address.group(1) if address else ""
    if "helo=" in inner:
        helo = inner.partition("helo=")[2].split()
        named = not name.startswith("[")
        return TraceClient(helo[0] if helo else "", ip, named, True, name if named else "")
    if inner.startswith("helo "):
        qmail_ip = _RCVD_QMAIL_IP_RE.match(field_, m.end())
        named = name != "unknown"
        return TraceClient(inner[5:].strip(), qmail_ip.group(1) if qmail_ip else "", named, False, name if named else "")
    host = inner.partition("[")[0].strip().rpartition("@")[2]
    named = bool(host) and host != "unknown"
    return TraceClient(name, ip, named, True, host if named else "")


def _msgid_added_by_relay(feats: MessageFeatures, trace: list[str]) -> str:
    """The Received field of the relay that wrote the Message-ID ("" when none did): the field names as its host
    the Message-ID's right side and as its queue id part of the left side, and records a message that came to
    it over SMTP from another machine, one with no reverse DNS name. A relay writes a Message-ID only for a
    message that arrived without one (sendmail, Postfix's always_add_missing_headers); mail submitted on the
    relay itself ("(from user@localhost) by host id X", a web server's script) is left alone, and so is a
    named server's (2002's newsletters from their own hosts: the spamassassin-train ham it would mark). A client
    whose reverse DNS name is a customer line's (`TraceClient.dynamic`) counts as unnamed: a home machine sending
    straight to a remote relay is no server. The hop is local when the client's address is a loopback one (a
    HELO of "localhost.com" from a public address is not), or, when the field gives none, when it says localhost."""
    ids = feats.header("message-id")
    m = _MSGID_PARTS_RE.match(ids[0]) if ids else None
    if m is None:
        return ""
    local, host = m.group(1), m.group(2).lower()
    for field_ in trace:
        by = _RCVD_BY_RE.search(field_)  # the first "by": the relay that wrote this field
        queue = _RCVD_ID_RE.search(field_, by.end()) if by is not None else None
        if by is None or queue is None or by.group(1).lower() != host or queue.group(1) not in local:
            continue
        client = _trace_client(field_)
        if field_[:5].lower() != "from " or not _RCVD_SMTP_RE.search(field_) or client is None:
            return ""
        local = _loopback(client.ip) if client.ip else bool(_LOCAL_HOP_RE.search(field_[: by.start()]))
        return field_ if not local and (not client.named or client.dynamic) else ""
    return ""


def _helo_forged(client: TraceClient) -> bool:
    """Whether the client greeted with a domain that it is not: a free-mail provider's (mfa.vip.mail.yahoo.com)
    from a machine whose reverse DNS name is not that provider's, or a bare registrable domain ("mydomain.com",
    "localhost.com") from a customer line of another domain (`TraceClient.dynamic`). A server greeting with its
    owner's bare domain from a hosting provider's name is common and left alone."""
    helo = client.helo.lower().rstrip(".")
    if not has_known_suffix(helo):
        return False
    home = registrable_domain(helo)
    if home in FREEMAIL:
        return registrable_domain(client.rdns) != home
    return home == helo and client.dynamic and registrable_domain(client.rdns) != home


def _web_script_host(feats: MessageFeatures, trace: list[str]) -> str:
    """The host whose web server account handed the message to its MTA ("" when none did): Exim's field names
    it; qmail's ("invoked by uid 33") does not, and its Message-ID ("<...qmail@host>") does."""
    for field_ in trace:
        m = _WEB_USER_EXIM_RE.match(field_)
        if m is not None:
            return m.group(1).lower()
        if _WEB_USER_QMAIL_RE.match(field_):
            ids = feats.header("message-id")
            own = _QMAIL_MSGID_RE.match(ids[0]) if ids else None
            return own.group(1).lower() if own else ""
    return ""


def _to_named_by_address(feats: MessageFeatures) -> str:
    """The To address when every mailbox of the (first) To field shows its own address as its name
    ('"bob@example.com" <bob@example.com>'): what bulk tools write from a bare list of addresses (SpamAssassin's
    TO_ADDRESS_EQ_REAL). "" otherwise."""
    shown = [(n.strip().strip("'\"").strip().lower(), a) for n, a in _mailboxes(feats.header("to")[:1])]
    return shown[0][1] if shown and all(n == a for n, a in shown) else ""


def _absurd_zone(date: str) -> bool:
    """Whether the Date field's numeric zone is one no clock keeps (`_NUMERIC_ZONE_RE`)."""
    m = _NUMERIC_ZONE_RE.search(date.strip()[-80:])
    return m is not None and (int(m.group(2)) > 14 or int(m.group(3)) >= 60)


def _constant_boundary(feats: MessageFeatures) -> str:
    """The top-level MIME boundary when, its dashes, equals signs and underscores aside, it is one character eight
    or more times (`_BOUNDARY_RE`); "" otherwise."""
    types = feats.header("content-type")
    m = _BOUNDARY_RE.search(types[0][:MAX_HEADER_CHARS]) if types else None
    core = m.group(1).strip("-=_") if m else ""
    return m.group(1) if m and len(core) >= 8 and len(set(core)) == 1 else ""


def _joined_words(subject: str) -> bool:
    core = _SUBJECT_PREFIX_RE.sub("", subject, count=1).strip()
    if not core or any(c in core for c in " \t@/:") or not _WORD_JOINER_RE.search(core):
        return False
    if _IDENTIFIER_RE.fullmatch(core.rstrip("?!.,;")) or _FILE_NAME_RE.fullmatch(core):
        return False
    return sum(1 for w in _WORD_JOINER_RE.split(core) if _TWO_LETTERS_RE.search(w)) >= 3


class SpamRules:
    def __init__(self, identity: OwnIdentity | None = None, *, past_hours: float = 96.0,
                 future_hours: float = 12.0, hidden_min_chars: int = 20) -> None:
        self.identity = identity or OwnIdentity()
        self.past_hours, self.future_hours = past_hours, future_hours
        self.hidden_min_chars = hidden_min_chars

    def evaluate(self, feats: MessageFeatures, *, now: float, is_outside: bool,
                 identity: OwnIdentity | None = None) -> list[Symbol]:
        """Every rule's symbols. `identity` overrides the one given at construction (a reloaded map)."""
        ident = identity or self.identity
        out: list[Symbol] = []
        out.extend(self._subject(feats))
        out.extend(self._headers(feats, now))
        if is_outside:
            out.extend(self._trace(feats))
        out.extend(self._body(feats))
        out.extend(phishing_symbols(feats))
        out.extend(self._identity(feats, is_outside, ident))
        return out

    # -- subject and header rules ----------------------------------------------------------------
    @staticmethod
    def _subject(feats: MessageFeatures) -> Iterator[Symbol]:
        if feats.subject is None:
            yield Symbol("MISSING_SUBJECT")
            return
        subject = feats.subject
        if not subject.strip():
            yield Symbol("EMPTY_SUBJECT")
            return
        letters = [c for c in subject if c.isalpha()]
        if len(letters) >= 10 and sum(c.isupper() for c in letters) >= 0.9 * len(letters):
            yield Symbol("SUBJECT_ALL_CAPS")
        m = _SUBJECT_TAG_RE.search(subject)
        if m is not None and _looks_random(m.group(1)):
            yield Symbol("SUBJECT_RANDOM_TAG", m.group(1))
        if _PADDING_RE.search(subject):
            yield Symbol("SUBJECT_PADDING")
        if _ADV_RE.match(subject):
            yield Symbol("SUBJECT_ADV", subject[:20])
        if _joined_words(subject):
            yield Symbol("SUBJECT_JOINED_WORDS", subject[:40])

    def _headers(self, feats: MessageFeatures, now: float) -> Iterator[Symbol]:
        # A missing From, Date or Message-ID is the header check's (policy/checks/headers.py).
        if feats.date is not None:
            hours = (now - feats.date.timestamp()) / 3600
            if hours > self.past_hours:
                yield Symbol("DATE_IN_PAST", f"{hours / 24:.0f}d")
            elif -hours > self.future_hours:
                yield Symbol("DATE_IN_FUTURE", f"{-hours:.0f}h")
        ids = feats.header("message-id")
        if ids and not _MSGID_RE.match(ids[0].strip()):
            yield Symbol("MID_MALFORMED", ids[0][:40])
        if ids and _MSGID_OE_RE.match(ids[0].strip()) and not any(
                _MICROSOFT_RE.search(v) for v in feats.header("x-mailer") + feats.header("x-mimeole")):
            yield Symbol("MSGID_OE_FORGED", ids[0][:40])
        mailer = feats.header("x-mailer")[:1]
        if mailer and _MS_CLIENT_RE.search(mailer[0]) and "mac" not in mailer[0].lower() \
                and not feats.header("x-mimeole") and not feats.header("thread-index"):
            yield Symbol("MUA_OUTLOOK_FORGED", mailer[0][:40])
        if mailer and _RANDOM_MAILER_RE.fullmatch(mailer[0].strip()) and not mailer[0].strip()[1:].islower():
            yield Symbol("X_MAILER_RANDOM", mailer[0][:40])
        if mailer and BULK_MAILER_RE.search(mailer[0][:200]):
            yield Symbol("X_MAILER_BULK", mailer[0][:40])
        repeated = [n for n in _ONCE_ONLY_FIELDS if feats.header_names.count(n) > 1]
        if repeated:
            yield Symbol("HEADER_REPEATED", ", ".join(repeated))
        urgent = next((f"{n}: {v}" for n in _PRIORITY_FIELDS for v in feats.header(n)[:1] if _PRIORITY_RE.match(v)), None)
        if urgent:
            yield Symbol("PRIORITY_HIGH", urgent[:40])
        dates = feats.header("date")
        if dates and (feats.date is None or feats.date.year < 1990 or not _ZONE_RE.search(dates[0])
                      or _absurd_zone(dates[0])):
            yield Symbol("DATE_MALFORMED", dates[0][:40])
        recipients = feats.header("to") + feats.header("cc")
        listed = " ".join(recipients).lower()
        if any(not v.strip() for v in recipients) or "undisclosed" in listed or "recipients@" in listed \
                or "recipient list suppressed" in listed:
            # A hidden list whose every link goes to the sender's own site is that sender's own mailing (a shop's
            # or a club's customers in Bcc): weaker evidence than a hidden list pointing elsewhere or nowhere,
            # which is how advance-fee, giveaway and phishing sprays are sent.
            own = _links_only_to_sender(feats)
            yield Symbol("TO_UNDISCLOSED_OWN_LINKS" if own else "TO_UNDISCLOSED",
                         f"{listed[:60]} (links only to {own})" if own else listed[:60])
        # Addressed to its own sender: the real recipients are on a hidden (Bcc) list, as with TO_UNDISCLOSED.
        recipients_list = _recipients(feats)
        if len(recipients_list) == 1 and feats.from_address and recipients_list[0] == feats.from_address:
            yield Symbol("TO_IS_SENDER", feats.from_address[:60])
        if _dictionary_order(recipients_list):
            yield Symbol("RECIPS_DICTIONARY", ", ".join(recipients_list)[:60])
        named_by_address = _to_named_by_address(feats)
        if named_by_address:
            yield Symbol("TO_NAME_IS_ADDRESS", named_by_address[:60])
        if ids and _MSGID_RATWARE_RE.match(ids[0].strip()):
            yield Symbol("MSGID_RATWARE", ids[0][:40])
        boundary = _constant_boundary(feats)
        if boundary:
            yield Symbol("MIME_BOUNDARY_RATWARE", boundary[:40])
        if feats.reply_to_address and feats.from_address:
            rdom = feats.reply_to_address.rpartition("@")[2]
            if rdom in FREEMAIL and registrable_domain(rdom) != feats.from_registrable_domain:
                yield Symbol("FREEMAIL_REPLYTO", rdom)

    # -- the trace fields of the relays before us (mail from outside only) ---------------------------
    @staticmethod
    def _trace(feats: MessageFeatures) -> Iterator[Symbol]:
        """What the relays on the way recorded of the machines before them (SpamAssassin's RCVD_* idea). Our
        own Received field is added after the verdict, so every field here is upstream; the client that talks
        to us is judged by the HELO check (HELO_BARE_IP, HELO_NOT_FQDN), not here."""
        trace = _trace_fields(feats)
        for field_ in trace:
            m = _RCVD_NUMERIC_HELO_RE.match(field_)
            if m and _public_ipv4(m.group(1)) and _RCVD_SMTP_RE.search(field_):
                yield Symbol("RCVD_NUMERIC_HELO", m.group(1))
                break
        clients = [(field_, _trace_client(field_)) for field_ in trace]  # each field read once, for three rules
        for field_, client in clients:
            if client and not client.named and client.tells_helo and has_known_suffix(client.helo) \
                    and registrable_domain(client.helo) == client.helo and _public_ipv4(client.ip) \
                    and _RCVD_PLAIN_SMTP_RE.search(field_):
                yield Symbol("RCVD_HELO_DOMAIN_NO_RDNS", f"{client.helo} [{client.ip}]"[:60])
                break
        added = _msgid_added_by_relay(feats, trace)
        if added:
            yield Symbol("MSGID_ADDED_BY_RELAY", added[:60])
        # Clients that a relay took over SMTP from a public address: whose greeting and line the next two judge.
        remote = [(field_, client) for field_, client in clients
                  if client is not None and _public_ipv4(client.ip) and _RCVD_SMTP_RE.search(field_)]
        forged = next((client for _field, client in remote if _helo_forged(client)), None)
        if forged is not None:
            yield Symbol("RCVD_HELO_FORGED", f"{forged.helo} from {forged.rdns or 'no name'} [{forged.ip}]"[:60])
        for field_ in trace:
            if _RCVD_FORGED_RDNS in field_ and _RCVD_SMTP_RE.search(field_):
                yield Symbol("RCVD_RDNS_FORGED", field_[:60])
                break
        for field_, client in remote:
            by = _RCVD_BY_RE.search(field_)
            if client.dynamic and by is not None and registrable_domain(by.group(1)) != registrable_domain(client.rdns):
                yield Symbol("RCVD_DYNAMIC_DIRECT", f"{client.rdns} to {by.group(1)}"[:60])
                break
        web_host = _web_script_host(feats, trace)
        if "." in web_host and feats.from_address and registrable_domain(web_host) != feats.from_registrable_domain:
            yield Symbol("WEB_SCRIPT_FOREIGN_FROM", f"{web_host} for {feats.from_domain}"[:60])

    # -- body rules ------------------------------------------------------------------------------
    def _body(self, feats: MessageFeatures) -> Iterator[Symbol]:
        if feats.has_html_part and not feats.has_text_part:
            yield Symbol("MIME_HTML_ONLY")
            if "<img" in feats.html.lower() and len(feats.html_text) < 200:
                yield Symbol("HTML_IMAGE_ONLY", f"{len(feats.html_text)} chars of text")
        if feats.alternative_flaw:
            yield Symbol("MIME_ALT_ONE_SIDED", feats.alternative_flaw)
        if len(feats.hidden_text.strip()) >= self.hidden_min_chars:
            yield Symbol("HTML_HIDDEN_TEXT", f"{len(feats.hidden_text)} chars")
        home = feats.from_registrable_domain
        # A shortener behind an open redirect or a tracker hides the destination as well as one linked directly.
        short = next((h for h in feats.reader_hosts if (h in SHORTENERS or registrable_domain(h) in SHORTENERS)
                      and home not in SHORTENER_OWNERS.get(h, ())), None)
        if short:
            yield Symbol("URI_SHORTENER", short)
        if feats.html and _FONT_BIG_RE.search(feats.html, 0, MAX_PART_BYTES):
            yield Symbol("HTML_FONT_BIG")
        if feats.base64_ascii_text:
            yield Symbol("MIME_BASE64_TEXT")
        if feats.qp_encoded_dots:
            yield Symbol("QP_ENCODED_DOTS", f"{feats.qp_encoded_dots} dots written =2E")
        text = f"{feats.subject or ''}\n{feats.body_text[:30000]}"
        bangs = len(_EXCLAMATION_RE.findall(text))
        if bangs >= EXCLAMATION_RUNS_MIN:
            yield Symbol("TEXT_EXCLAMATIONS", f"{bangs} runs of '!!'")
        phrases = {" ".join(m.group(1).lower().split()) for m in SPAM_PHRASE_RE.finditer(text)}
        if len(phrases) >= SPAM_PHRASES_MIN:
            yield Symbol("SPAM_PHRASES", ", ".join(sorted(phrases))[:80])
        tail = feats.body_text.rstrip()[-80:]
        tag = _BODY_TAG_RE.search(tail)
        if tag:
            yield Symbol("BODY_RANDOM_TAG", tag.group(0).strip()[:40])
        if not feats.has_list_headers:
            removal = REMOVAL_CUES.search(feats.body_text[-3000:])
            if removal:
                yield Symbol("BULK_REMOVAL_NO_LIST", removal.group(0)[:40])
        greeting = GENERIC_GREETING_RE.search(feats.body_text[:3000])
        if greeting:
            yield Symbol("GENERIC_GREETING", greeting.group(0))

    # -- impersonation of our own domains and users ------------------------------------------------
    @staticmethod
    def _identity(feats: MessageFeatures, is_outside: bool, ident: OwnIdentity) -> Iterator[Symbol]:
        candidates = [feats.from_domain, feats.reply_to_address.rpartition("@")[2], *feats.url_hosts[:30]]
        puny = next((d for d in candidates if d and is_punycode(d)), None)
        if puny:
            yield Symbol("PUNYCODE_DOMAIN", puny)
        if ident.domains:
            for d in candidates:
                if d and not d.replace(".", "").isdigit() and ":" not in d:
                    ours = ident.lookalike_of(d)
                    if ours:
                        yield Symbol("LOOKALIKE_DOMAIN", f"{d}~{ours}")
                        break
        # A sender domain under no public suffix ("bradesco.banco") has no place in the DNS: no one can reply.
        # Only outside senders (internal hosts send from names like host.localdomain), and not the names
        # RFC 2606 reserves for documentation and tests.
        domain = feats.from_domain
        if is_outside and domain and not has_known_suffix(domain) and not ident.is_ours(domain) \
                and domain.rpartition(".")[2] not in _RESERVED_TLDS:
            yield Symbol("FROM_NO_PUBLIC_SUFFIX", domain[:60])
        if is_outside and feats.from_display and not ident.is_ours(feats.from_domain):
            imitated = ident.imitated_in(feats.from_display)
            if imitated:
                yield Symbol("DISPLAY_NAME_IMPERSONATION", imitated)
