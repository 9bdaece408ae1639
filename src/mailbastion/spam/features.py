"""What the spam stage looks at in a message, extracted once and cached on the message.

    feats = extract(message)        # MessageFeatures; cached in message._cache, so every check shares it
    feats.subject, feats.text, feats.anchors, feats.url_hosts, feats.attachments ...

Headers come from the one header parser (`SpooledMessage.header`, core/header_block.py), decoded as
UTF-8 (RFC 6532) and then RFC 2047; MIME parts from the message's shared tree (`SpooledMessage.parsed`),
so the spam stage parses nothing a second time.

Contract: `extract` never raises on malformed mail (a broken part is skipped); it reads at most
`MAX_PART_BYTES` of each text part, `MAX_PARTS` parts and the first `MAX_SCAN_BYTES` of the message, so
its cost is bounded per message.
"""

from __future__ import annotations

import bisect
import email.errors
import email.header
import email.utils
import html
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from urllib.parse import parse_qsl, unquote

from mailbastion.core import lenient_addresses
from mailbastion.core.encoded_words import decode_words
from mailbastion.core.message import SpooledMessage
from mailbastion.spam.domains import registrable_domain

MAX_PART_BYTES = 64 * 1024
# HTML and SVG attachments are read further (`_markup_text`), up to this much in all: phishing pages carry
# their logo or background inline as a base64 `data:` URI of 50-200 KB before the form, which the first 64 KiB
# would never reach.
MAX_MARKUP_BYTES = 1024 * 1024
# The payload of a base64 data: URI (its media type is kept, so DATA_URI still sees `data:text/html`).
_EMBEDDED_RE = re.compile(r"(?i)(data:[a-z0-9.+/-]*(?:;[a-z0-9=._-]+)*;base64,)[A-Za-z0-9+/=\s]{64,}")
MAX_PARTS = 40
MAX_NODES = 1000  # entities of the MIME tree walked, containers included (core.mime_parts.MAX_PARTS)
# A header field's value is read up to here (SpamAssassin's corpus has none longer than 14 KiB): a field of a
# megabyte, folded over short lines, costs the parsers what this does, not seconds.
MAX_HEADER_CHARS = 16 * 1024
MAX_SCAN_BYTES = 1024 * 1024  # like SpamAssassin's scan size limits: the rest of a big message is attachments
_CACHE_KEY = "spam.features"
# Attachments whose markup is read (credential forms, scripts): HTML and SVG files, as phishing sends them.
MARKUP_EXTENSIONS = frozenset({"htm", "html", "shtml", "xhtml", "svg", "hta", "mht", "mhtml"})
_MARKUP_TYPES = frozenset({"text/html", "image/svg+xml", "application/xhtml+xml"})

# A dot written as "=2E" inside a word of a quoted-printable text ("www=2Eexample=2Ecom"): no encoder needs to
# (RFC 2045 §6.7 leaves "." literal); ratware does it so that a filter reading the raw text finds no domain.
_QP_DOT_RE = re.compile(r"[A-Za-z0-9]=2E[A-Za-z0-9]")
_URL_RE = re.compile(r"""(?i)\b(?:https?://|www\.)[^\s"'<>()\[\]{}]{2,300}""")
_TAG_RE = re.compile(r"(?s)<[^>]{0,2000}>")
# Markup is read without patterns that run from every "<" to the end of the part (`<!--.*?-->` over 15,000
# unterminated "<!--" took 3 s of a 60 KB part): an element's opening tag ends at the first ">" after its name,
# found by bisecting the ">" positions of one pass, and its closing tag likewise. An opening tag longer than
# MAX_TAG_CHARS is not read as one (the longest in the corpora, a tracking link, is about 3,000 characters).
MAX_TAG_CHARS = 16 * 1024
_NAME_RE = re.compile(r"<(\w+)\b")
_CLOSE_RE = re.compile(r"</(\w+)\s*>")
_GT_RE = re.compile(">")
_DROPPED = frozenset({"script", "style", "head"})  # elements whose content is never shown
_ANCHOR = frozenset({"a"})
_DROPPED_CUE = re.compile(r"(?i)<(?:script|style|head)\b")
_HREF_RE = re.compile(r"""(?i)\bhref\s*=\s*["']?([^"'\s>]+)""")
_HIDING_RE = re.compile(
    r"""(?i)style\s*=\s*["'][^"']*?(?:display\s*:\s*none|visibility\s*:\s*hidden|"""
    r"""font-size\s*:\s*0(?:\.0+)?(?:px|pt|em)?\s*[;"']|opacity\s*:\s*0(?:\.0+)?\s*[;"'])"""
)


class _Closings:
    """Where each element's closing tags start and end in `markup`, and where its ">" are, found in one pass."""

    def __init__(self, markup: str) -> None:
        self._at: dict[str, tuple[list[int], list[int]]] = {}
        self.gt = [m.start() for m in _GT_RE.finditer(markup)]
        for m in _CLOSE_RE.finditer(markup):
            starts, ends = self._at.setdefault(m.group(1).lower(), ([], []))
            starts.append(m.start())
            ends.append(m.end())

    def tag_end(self, pos: int) -> int:
        """The position of the first ">" at or after `pos`, -1 when there is none."""
        i = bisect.bisect_left(self.gt, pos)
        return self.gt[i] if i < len(self.gt) else -1

    def after(self, name: str, pos: int) -> tuple[int, int] | None:
        """(start, end) of the first closing tag of `name` that starts at or after `pos`."""
        found = self._at.get(name.lower())
        if found is None:
            return None
        i = bisect.bisect_left(found[0], pos)
        return (found[0][i], found[1][i]) if i < len(found[0]) else None


def _elements(markup: str, want: Callable[[str, str], object], *, names: frozenset[str] | None = None,
              closing_in_tag: bool = False) -> Iterator[tuple[int, object, str, int]]:
    r"""Each element whose (lower-case name, attributes) `want` accepts (returns something true), as (start, what
    `want` returned, content, end of closing tag), in order and not overlapping: from each opening tag to the first closing
    tag of its name after it (`<(\w+)\b[^>]*>(.*?)</\1\s*>` as a pattern reads it, case-insensitive); an
    element without a closing tag is no element, and the search goes on at the next "<". `closing_in_tag`: the
    closing tag may start right after the name (`<(script)\b.*?</\1\s*>`, "<script</script>"). `names`: only
    elements of these (lower-case) names are looked at."""
    closings: _Closings | None = None
    pos = 0
    for m in _NAME_RE.finditer(markup):
        if m.start() < pos or (names is not None and m.group(1).lower() not in names):
            continue
        closings = closings or _Closings(markup)
        end = closings.tag_end(m.end())
        if end < 0:
            break  # no ">" after this: no tag starts here or later
        if end - m.end() > MAX_TAG_CHARS:
            continue
        name = m.group(1).lower()
        found = want(name, markup[m.end():end])
        if not found:
            continue
        opened = end + 1
        closing = closings.after(name, m.end() if closing_in_tag else opened)
        if closing is None:
            continue
        yield m.start(), found, markup[opened:closing[0]], closing[1]
        pos = closing[1]


def _without_comments(markup: str) -> str:
    r"""`<!--.*?-->` replaced by a space, left to right; from an unterminated "<!--" on, nothing more is."""
    out: list[str] = []
    pos = 0
    while (start := markup.find("<!--", pos)) >= 0 and (end := markup.find("-->", start + 4)) >= 0:
        out += (markup[pos:start], " ")
        pos = end + 3
    out.append(markup[pos:])
    return "".join(out)


def _without_dropped(markup: str) -> str:
    """Script, style and head elements replaced by a space (their content is never shown)."""
    if _DROPPED_CUE.search(markup) is None:
        return markup
    out: list[str] = []
    pos = 0
    for start, _found, _content, end in _elements(markup, lambda _n, _a: True, names=_DROPPED, closing_in_tag=True):
        out += (markup[pos:start], " ")
        pos = end
    out.append(markup[pos:])
    return "".join(out)
_WS_RE = re.compile(r"\s+")
_WORD_CHAR_RE = re.compile(r"\w")
_BREAK_RE = re.compile(r"[\r\n\t]+")  # header values keep their runs of spaces (bulk tools pad subjects)
_HOST_RE = re.compile(r"(?i)^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/?#]*@)?(\[[0-9a-f:.]+\]|[^/:?#\\]+)")


@dataclass(frozen=True, slots=True)
class Anchor:
    href: str  # as written in the HTML
    host: str  # lower-case host of href ("" when none)
    shown: str  # the visible link text, whitespace folded

    @property
    def url(self) -> str:
        """The address a browser follows: `href` with its HTML character references decoded (`&amp;`, `&#58;`)."""
        return html.unescape(self.href)


@dataclass(frozen=True, slots=True)
class Attachment:
    content_type: str  # "application/zip"
    extension: str  # "zip" ("" when no file name)


@dataclass(slots=True)
class MessageFeatures:
    subject: str | None  # None when the header is missing
    from_display: str
    from_address: str  # lower-case addr-spec of From ("" when none)
    reply_to_address: str
    date: datetime | None
    has_date: bool
    has_message_id: bool
    header_names: tuple[str, ...]
    text: str  # decoded text/plain parts
    html: str  # decoded text/html parts, raw
    html_text: str  # visible text of the HTML
    hidden_text: str  # text inside elements styled invisible
    anchors: tuple[Anchor, ...]
    urls: tuple[str, ...]  # every URL seen in text and HTML (deduplicated, in order)
    attachments: tuple[Attachment, ...]
    has_text_part: bool
    has_html_part: bool
    raw_headers: tuple[tuple[str, str], ...] = field(default=())  # (lower name, decoded value)
    url_hosts: tuple[str, ...] = field(default=())  # hosts of `urls`, deduplicated, in order
    # Hosts of the web addresses that a link's query carries (`redirect_hosts`): where an open redirect or a
    # tracker sends the reader. Kept apart from `url_hosts`, which the classifier's tokens read.
    redirect_hosts: tuple[str, ...] = field(default=())
    attached_markup: str = ""  # decoded HTML/SVG attachments (MARKUP_EXTENSIONS), for forms and scripts
    qp_encoded_dots: int = 0  # "=2E" inside words of the quoted-printable text parts, before decoding
    # A body text part in base64 whose text is plain ASCII: no mail software needs base64 for 7-bit text (RFC 2045
    # §6.2 gives it 7bit or quoted-printable); bulk tools encode so that word filters do not read the text.
    base64_ascii_text: bool = False
    # How a multipart/alternative fails to offer two readings of one text ("" when none does): "no text/plain"
    # (an HTML part with no plain sibling) or "empty text/plain" / "empty text/html" (one side without a word
    # while the other has some). Mail software writes both from one text; bulk tools fill one and leave the other.
    alternative_flaw: str = ""

    @property
    def reader_hosts(self) -> tuple[str, ...]:
        """The hosts a reader is sent to: those of the links, then those an open redirect or a tracker carries
        in its query (`redirect_hosts`), which the reader reaches one click later; each once, in order."""
        return tuple(dict.fromkeys((*self.url_hosts, *self.redirect_hosts)))

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    @property
    def from_registrable_domain(self) -> str:
        """The registrable domain of the From address ("" without one), what the sender's own links share."""
        return registrable_domain(self.from_domain)

    @property
    def body_text(self) -> str:
        return self.text if self.text.strip() else self.html_text

    def header(self, name: str) -> list[str]:
        """The decoded values of every field called `name` (lower case), in order."""
        return [v for k, v in self.raw_headers if k == name]

    @property
    def has_list_headers(self) -> bool:
        """Mail from a mailing list or a bulk sender that says so (RFC 2369 / RFC 2919)."""
        return any(n in ("list-id", "list-unsubscribe", "list-post") for n in self.header_names)


def decode_header(value: str | None) -> str:
    """RFC 2047 words decoded, line breaks and tabs made single spaces; never raises."""
    if not value:
        return ""
    value = str(value)
    if "=?" not in value:
        return _BREAK_RE.sub(" ", value).strip()
    try:
        parts = []
        for chunk, charset in decode_words(value):
            if isinstance(chunk, bytes):
                parts.append(chunk.decode(_charset(charset), "replace"))
            else:
                parts.append(chunk)
        return _BREAK_RE.sub(" ", "".join(parts)).strip()
    except (LookupError, ValueError, UnicodeError, AssertionError, email.errors.MessageError):
        return _BREAK_RE.sub(" ", value).strip()


def url_host(url: str) -> str:
    """The lower-case host of a URL or `www.` reference, without port or userinfo ("" if none)."""
    m = _HOST_RE.match(url.strip())
    if not m:
        return ""
    host = m.group(1).lower().strip(".").rstrip("\\")
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


# A query that may carry a web address: "http" written out or percent-encoded, "//" (scheme-relative) or "www.".
_CARRIED_CUE_RE = re.compile(r"(?i)http|%2f|=//|www\.")
_ADDRESS_STARTS = ("http://", "https://", "//", "www.")
MAX_REDIRECT_URLS = 100


def carried_hosts(url: str) -> Iterator[str]:
    """The hosts of the web addresses carried as query values of `url`, as an open redirect or a click tracker
    holds its destination: `https://vk.com/away.php?to=https%3A%2F%2Ftinyurl.com%2Fx` carries tinyurl.com. A value
    is read once percent-decoded (as the query is parsed) and, if that is not yet an address, once more
    (addresses encoded twice over, as trackers nest them); an address starts with a scheme, "//" or "www.". One
    level: a carried address's own query is not read again."""
    query = url.partition("?")[2].partition("#")[0]
    if not query or not _CARRIED_CUE_RE.search(query):
        return
    for _name, value in parse_qsl(query[:4000]):
        value = value.strip()
        if not value.lower().startswith(_ADDRESS_STARTS):
            value = unquote(value).strip()
        if value.lower().startswith(_ADDRESS_STARTS):
            host = url_host("http:" + value if value.startswith("//") else value)
            if host and "." in host:
                yield host


def redirect_hosts(urls: Iterable[str]) -> tuple[str, ...]:
    """`carried_hosts` of each of `urls`, deduplicated, in order; at most MAX_REDIRECT_URLS links are read."""
    found: dict[str, None] = {}
    for n, url in enumerate(urls):
        if n >= MAX_REDIRECT_URLS:
            break
        for host in carried_hosts(url):
            found.setdefault(host, None)
    return tuple(found)


def _charset(name: str | None) -> str:
    if not name or name.lower() in ("unknown-8bit", "x-unknown", "default", "us-ascii"):
        return "latin-1" if name and name.lower() != "us-ascii" else "ascii"
    try:
        "".encode(name)
    except LookupError:
        return "latin-1"
    return name


def _markup_text(part: Message, limit: int) -> tuple[str, int]:
    """An HTML or SVG attachment's markup without the payloads of its embedded base64 images, up to
    MAX_PART_BYTES of what is left: where a page's form and scripts are, however big its pictures. Decodes at
    most `limit` bytes of the part; returns the markup and the length of the text decoded (what the caller
    counts against MAX_MARKUP_BYTES: characters, at most as many as the bytes for the usual charsets)."""
    text = _payload_text(part, limit)
    return _EMBEDDED_RE.sub(r"\1", text)[:MAX_PART_BYTES], len(text)


def _payload_text(part: Message, limit: int = MAX_PART_BYTES) -> str:
    try:
        data = part.get_payload(decode=True)
    except (AssertionError, ValueError, TypeError, LookupError, email.errors.MessageError):
        return ""
    if not isinstance(data, bytes):
        return ""
    data = data[:limit]
    try:
        charset = _charset(part.get_content_charset())
    except (ValueError, LookupError, email.errors.MessageError):
        charset = "latin-1"
    try:
        return data.decode(charset, "replace")
    except (LookupError, UnicodeError):
        return data.decode("latin-1", "replace")


def _qp_encoded_dots(part: Message) -> int:
    """How many dots the part's quoted-printable text writes as "=2E" inside a word (its first MAX_PART_BYTES)."""
    try:
        if str(part.get("Content-Transfer-Encoding") or "").strip().lower() != "quoted-printable":
            return 0
        payload = part.get_payload()
    except (ValueError, LookupError, TypeError, email.errors.MessageError):
        return 0
    return len(_QP_DOT_RE.findall(payload[:MAX_PART_BYTES])) if isinstance(payload, str) else 0


def html_to_text(markup: str) -> str:
    s = _without_comments(markup)
    s = _without_dropped(s)
    s = _TAG_RE.sub(" ", s)
    return _WS_RE.sub(" ", html.unescape(s)).strip()


def _links(markup: str) -> Iterator[tuple[str, str]]:
    r"""(href, content) of each <a> element with an href, as the pattern
    `<a\b[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)[^>]*>(.*?)</a\s*>` (case-insensitive) reads them, in linear time."""
    if _HREF_RE.search(markup) is None:
        return
    for _start, href, content, _end in _elements(markup, lambda _name, attributes: _HREF_RE.search(attributes),
                                                 names=_ANCHOR):
        assert isinstance(href, re.Match)
        yield href.group(1), content


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # RFC 5322 §3.3: -0000 means UTC with no information about the local zone.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def extract(message: SpooledMessage) -> MessageFeatures:
    """The features of `message`, computed on first use and cached on it."""
    cached = message._cache.get(_CACHE_KEY)
    if isinstance(cached, MessageFeatures):
        return cached
    feats = _extract(message)
    message._cache[_CACHE_KEY] = feats
    return feats


def extract_bytes(raw: bytes) -> MessageFeatures:
    """The features of a message given as bytes (a corpus file, a reported message)."""
    if raw.startswith(b"From "):  # an mbox separator line, as in the public corpora
        nl = raw.find(b"\n")
        raw = raw[nl + 1 :] if nl >= 0 else b""
    return _extract(SpooledMessage(raw))


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except (ValueError, LookupError, TypeError, IndexError, email.errors.MessageError):
        return "unknown"
    if isinstance(name, tuple):
        name = name[2]
    return str(name)


def _parts(message: SpooledMessage) -> tuple[list[Message], list[list[Message]]]:
    """The leaf parts of the shared MIME tree, at most MAX_PARTS of them among its first MAX_NODES entities
    (containers counted there, not against MAX_PARTS: a text wrapped in 40 nested multiparts was never read),
    and the children of each multipart/alternative among those entities; ([], []) when the tree cannot be
    walked."""
    out: list[Message] = []
    alternatives: list[list[Message]] = []
    try:
        for n, part in enumerate(message.parsed.walk()):
            if n >= MAX_NODES or len(out) >= MAX_PARTS:
                break
            if not part.is_multipart():
                out.append(part)
            elif part.get_content_type() == "multipart/alternative":
                children = part.get_payload()
                if isinstance(children, list):
                    alternatives.append(children)
        return out, alternatives
    except RecursionError:  # nested deeper than the walk can recurse: what was reached is read
        return out, alternatives
    except (ValueError, LookupError, TypeError, IndexError, AttributeError, email.errors.MessageError):
        return [], []


def _alternative_flaw(alternatives: list[list[Message]], worded: dict[int, bool]) -> str:
    """The first multipart/alternative that offers one reading only (see MessageFeatures.alternative_flaw).
    `worded` maps the id of each text/plain and text/html body part read to whether its text has a word."""
    for children in alternatives:
        types = [child.get_content_type() for child in children]
        if "text/html" in types and "text/plain" not in types:
            return "no text/plain"
        sides: dict[str, bool] = {}
        for child, ctype in zip(children, types, strict=True):
            if ctype in ("text/plain", "text/html") and id(child) in worded:
                sides[ctype] = sides.get(ctype, False) or worded[id(child)]
        if len(sides) == 2 and sides["text/plain"] != sides["text/html"]:
            return "empty text/html" if sides["text/plain"] else "empty text/plain"
    return ""


def _extract(message: SpooledMessage) -> MessageFeatures:
    headers = tuple((f.name, decode_header(f.value[:MAX_HEADER_CHARS])) for f in message.header.fields if f.name)

    def first(name: str) -> str | None:
        return next((v for k, v in headers if k == name), None)

    subject = first("subject")
    display, addr = lenient_addresses.parseaddr(first("from") or "")
    _rd, reply_addr = lenient_addresses.parseaddr(first("reply-to") or "")
    texts: list[str] = []
    htmls: list[str] = []
    markup_files: list[str] = []
    attachments: list[Attachment] = []
    scanned = 0
    qp_dots = 0
    b64_ascii = False
    markup_left = MAX_MARKUP_BYTES
    html_texts: list[str] = []
    worded: dict[int, bool] = {}
    leaves, alternatives = _parts(message)
    for part in leaves:
        ctype = part.get_content_type()
        filename = _filename(part)
        disposition = str(part.get("Content-Disposition") or "").lower()
        # A text part with a file name but shown inline is the body (AccuWeather names its HTML "x.htm").
        attached = "attachment" in disposition or bool(filename and ctype not in ("text/html", "text/plain"))
        if attached or not ctype.startswith(("text/", "message/")):
            ext = filename.rpartition(".")[2].lower()[:10] if "." in filename else ""
            attachments.append(Attachment(ctype, ext))
            if ext in MARKUP_EXTENSIONS or ctype in _MARKUP_TYPES:
                markup, read = _markup_text(part, markup_left)
                markup_files.append(markup)
                # MAX_MARKUP_BYTES in all, and never less than a part's usual 64 KiB each: forty HTML files do
                # not cost forty times the regular expressions
                markup_left = max(markup_left - read, MAX_PART_BYTES)
            continue
        if scanned >= MAX_SCAN_BYTES:
            continue
        body = _payload_text(part)
        scanned += len(body)
        qp_dots += _qp_encoded_dots(part)
        b64_ascii = b64_ascii or (bool(body.strip()) and body.isascii() and str(
            part.get("Content-Transfer-Encoding") or "").strip().lower() == "base64")
        if ctype == "text/html":
            htmls.append(body)
            shown = html_to_text(body)
            html_texts.append(shown)
            worded[id(part)] = _WORD_CHAR_RE.search(shown) is not None
        else:
            texts.append(body)
            if ctype == "text/plain":
                worded[id(part)] = _WORD_CHAR_RE.search(body) is not None
    text = "\n".join(texts)
    markup = "\n".join(htmls)
    anchors = tuple(
        Anchor(href.strip(), url_host(href) if "://" in href else "", _WS_RE.sub(" ", html_to_text(inner)))
        for href, inner in _links(markup)
    ) if markup else ()
    hidden = " ".join(html_to_text(inner) for _s, _found, inner, _e in _elements(
        markup, lambda _name, attributes: _HIDING_RE.search(attributes))) \
        if markup and _HIDING_RE.search(markup) else ""
    urls: dict[str, None] = {}
    for a in anchors:
        if a.host:
            urls.setdefault(a.url, None)
    for source in (text, markup):
        for m in _URL_RE.finditer(source):
            urls.setdefault(html.unescape(m.group(0)).rstrip(".,;:!?'\""), None)
    return MessageFeatures(
        subject=subject,
        from_display=display.strip().strip('"'),
        from_address=addr.lower(),
        reply_to_address=reply_addr.lower(),
        date=_parse_date(first("date")),
        has_date=first("date") is not None,
        has_message_id=first("message-id") is not None,
        header_names=tuple(k for k, _ in headers),
        text=text,
        html=markup,
        html_text=" ".join(t for t in html_texts if t),  # each part read alone: one part's "<!--" hides no other
        hidden_text=hidden,
        anchors=anchors,
        urls=tuple(urls),
        attachments=tuple(attachments),
        has_text_part=bool(texts),
        has_html_part=bool(htmls),
        raw_headers=headers,
        url_hosts=tuple(dict.fromkeys(h for h in map(url_host, urls) if h)),
        redirect_hosts=redirect_hosts(urls),
        attached_markup="\n".join(markup_files),
        qp_encoded_dots=qp_dots,
        base64_ascii_text=b64_ascii,
        alternative_flaw=_alternative_flaw(alternatives, worded),
    )
