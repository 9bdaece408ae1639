"""The From header, parsed strictly: exactly one address that every parser would agree on.

Spoofing lives in the gaps between parsers: the MUA shows one address, DMARC judges another. So the
header is read by three parsers (our strict RFC 5322 §3.4 tokenizer, `email.utils.getaddresses` in its
lenient mode (core/lenient_addresses.py) as compat32 mail software reads it, and `email.headerregistry` which decodes encoded-words as a modern
MUA does) and by a naive one that decodes encoded-words first and parses afterwards. They must agree
on one address; otherwise the message is refused (`refuse` is True). Lesser oddities are symbols.

Legacy encodings are not ambiguity in themselves: raw 8-bit bytes that are not UTF-8 (a Latin-1 display name
from old mail software) are read in every legacy charset a mail client might guess, and when every reading
gives the same ASCII address the message is scored (FROM_RAW_8BIT), not refused; an encoded-word inside a
quoted display name (RFC 2047 §5 forbids it, Japanese mail software writes it) likewise (FROM_ENCODED_QUOTED)
once every parser agrees on the address and the decoded word holds no address-like specials.

    analysis = analyze_from(message.header)      # the parsed header section (or its raw bytes)
    analysis.domain   -> "example.org" (the RFC5322.From domain DMARC judges) or None
    analysis.symbols  -> (Symbol("FROM_DISPLAY_SPOOF", "paypal.com"), ...)
"""

from __future__ import annotations

import email.header
import email.utils
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import HeaderRegistry

from mailbastion.auth.dmarc import organizational_domain
from mailbastion.core import lenient_addresses
from mailbastion.core.encoded_words import decoded_text
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.verdict import Symbol

# Symbols that make the From address unknowable: the message is refused (RFC 7489 §6.6.1 permits it).
REFUSING = frozenset({
    "FROM_MISSING", "FROM_MULTIPLE_HEADERS", "FROM_MULTIPLE_ADDRESSES", "FROM_UNPARSEABLE", "FROM_AMBIGUOUS",
    "FROM_FOLDING_TRICK", "FROM_INVALID_DOMAIN",
})
EMITS = REFUSING | {"FROM_ENCODED_ADDRESS", "FROM_COMMENT_ADDRESS", "FROM_DISPLAY_ADDRESS", "FROM_DISPLAY_SPOOF",
                    "FROM_SENDER_MISMATCH", "FROM_NAME_CASE", "FROM_RAW_8BIT", "FROM_ENCODED_QUOTED",
                    "FROM_BASE64_ASCII"}
# The charsets a mail client may guess for raw 8-bit header bytes (RFC 6532 allows only UTF-8): single-byte
# Western and Cyrillic, and the double-byte East Asian ones whose trail bytes include ASCII ('@', '\\', '[')
# and so could hide or reveal structure that the single-byte readings do not see.
LEGACY_CHARSETS = ("latin-1", "cp1252", "koi8-r", "cp932", "gb18030", "big5", "euc-kr")
# headerregistry defects that only say an encoded-word is misplaced (RFC 2047 §5), not that the address is unclear.
_ENCODED_WORD_DEFECTS = ("encoded word inside quoted string", "missing trailing whitespace after encoded-word",
                         "missing whitespace before encoded word")

_LOCAL_TAIL = re.compile(r"[^\s<>()\"',;:@]{1,64}$")
_DOMAIN_HEAD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,62}){0,8}\.[A-Za-z]{2,63}\b")
MAX_FROM_LENGTH = 8192  # a From field this long is an attack on parsers, never a mail address
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]"  # RFC 6532 §3.2: UTF-8 in atext
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FOLDED_FROM = re.compile(rb"(?i)^[ \t]+from[ \t]*:")
_REGISTRY = HeaderRegistry()
_SIMPLE_ADDR = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_SIMPLE = re.compile(rf"^(?:([A-Za-z0-9][A-Za-z0-9 _'-]*)\s<({_SIMPLE_ADDR})>|({_SIMPLE_ADDR}))$")


@dataclass(frozen=True, slots=True)
class FromAnalysis:
    address: str | None  # local@domain, domain lower case
    domain: str | None
    symbols: tuple[Symbol, ...]
    display_name: str = ""

    @property
    def refuse(self) -> bool:
        return any(s.name in REFUSING for s in self.symbols)


@dataclass(slots=True)
class _Field:
    name: str
    value: str  # unfolded


def _address_like(text: str) -> str | None:
    """The first `local@domain.tld` in free text. Linear in len(text): bounded looks around each '@'
    (a regex scanning for it would backtrack quadratically on a long display name)."""
    at = text.find("@")
    while at >= 0:
        local = _LOCAL_TAIL.search(text[max(0, at - 64) : at])
        domain = _DOMAIN_HEAD.match(text, at + 1, at + 1 + 254)
        if local and domain:
            return f"{local.group()}@{domain.group()}"
        at = text.find("@", at + 1)
    return None


def _unfold(raw: bytes) -> str:
    """A field's value as the strict reader wants it: the text after the colon, continuation lines
    joined by one space (RFC 5322 §2.2.3 unfolding), stripped. Undecodable bytes are kept as lone
    surrogates, which the caller refuses (a From no two readers decode alike)."""
    lines = raw.decode("utf-8", "surrogateescape").split("\n")
    first = lines[0].partition(":")[2].rstrip("\r")
    return " ".join([first.strip(), *(ln.strip() for ln in lines[1:] if ln.strip())]).strip()


def _fields(block: HeaderBlock, syms: list[Symbol]) -> list[_Field]:
    """The header fields as `HeaderBlock` splits them (RFC 5322 §2.2), noting folding tricks on From."""
    if re.search(rb"\r(?!\n)", block.header_bytes):
        syms.append(Symbol("FROM_FOLDING_TRICK", "bare CR in the header"))
    out: list[_Field] = []
    for f in block.fields:
        lines = f.raw.split(b"\n")
        # A continuation line is every line after a field's first, and the first line of an orphan
        # (a header section that starts folded, kept by HeaderBlock as a malformed field).
        folded = lines[1:] if f.name else lines
        if any(_FOLDED_FROM.match(ln) for ln in folded):
            # A From hidden in a continuation line: one parser sees a header, another a folded value.
            syms.append(Symbol("FROM_FOLDING_TRICK", "From in a folded line"))
        if not f.name:
            continue
        written = f.raw.partition(b":")[0].decode("ascii", "replace")
        if f.name == "from" and written != written.rstrip(" \t"):
            syms.append(Symbol("FROM_FOLDING_TRICK", "whitespace before the colon"))  # RFC 5322 §4.5 obs syntax
        out.append(_Field(written.rstrip(" \t"), _unfold(f.raw)))
    return out


def _unquote_local(local: str) -> str:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def _norm(addr: str) -> str | None:
    local, at, domain = addr.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    return f"{_unquote_local(local)}@{domain.lower().rstrip('.')}"


def _strict(value: str) -> tuple[list[str], str, list[str], str]:
    """Our RFC 5322 §3.4 reader: (addresses, display phrase, comments, error)."""
    tokens: list[tuple[str, str]] = []
    comments: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "(":
            depth, j, buf = 1, i + 1, []
            while j < n and depth:
                if value[j] == "\\" and j + 1 < n:
                    buf.append(value[j + 1])
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(value[j], 0)
                if depth:
                    buf.append(value[j])
                j += 1
            if depth:
                return [], "", comments, "unterminated comment"
            comments.append("".join(buf))
            tokens.append(("sp", " "))
            i = j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    buf.append("\\" + value[j + 1])
                    j += 2
                    continue
                buf.append(value[j])
                j += 1
            if j >= n:
                return [], "", comments, "unterminated quoted string"
            tokens.append(("q", '"' + "".join(buf) + '"'))
            i = j + 1
        elif c == "<":
            j = value.find(">", i)
            if j < 0:
                return [], "", comments, "unterminated angle address"
            tokens.append(("angle", value[i + 1 : j]))
            i = j + 1
        elif c in ",;:":
            tokens.append((c, c))
            i += 1
        elif c in " \t":
            tokens.append(("sp", " "))
            i += 1
        elif c in ">)":
            return [], "", comments, f"stray '{c}'"  # a ")" here once looped for ever (an atom of nothing)
        else:
            j = i
            while j < n and value[j] not in '()"<>,;: \t':
                j += 1
            tokens.append(("atom", value[i:j]))
            i = j
    if any(t[0] in (":", ";") for t in tokens):
        return ["<group>", "<group>"], "", comments, "group syntax"  # From is a mailbox-list (§3.6.2)
    boxes: list[list[tuple[str, str]]] = [[]]
    for t in tokens:
        if t[0] == ",":
            boxes.append([])
        else:
            boxes[-1].append(t)
    boxes = [b for b in boxes if any(k != "sp" for k, _ in b)]
    addresses, display = [], ""
    for box in boxes:
        angles = [v for k, v in box if k == "angle"]
        if len(angles) > 1:
            return [], "", comments, "several angle addresses"
        if angles:
            if "(" in angles[0] or '"' in angles[0].rpartition("@")[2]:
                return [], "", comments, "comment or quote inside angle address"
            addresses.append(angles[0].strip())
            display = "".join(v for k, v in box if k in ("atom", "q", "sp")).strip()
            continue
        while box and box[0][0] == "sp":
            box = box[1:]
        while box and box[-1][0] == "sp":
            box = box[:-1]
        if any(k == "sp" for k, _ in box):
            return [], "", comments, "addr-spec with spaces"  # two words: which one is the address?
        addresses.append("".join(v for _k, v in box))
    return addresses, display, comments, ""


def _valid(address: str) -> tuple[bool, str]:
    local, _, domain = address.rpartition("@")
    if not (_DOT_ATOM.match(local) or (local.startswith('"') and local.endswith('"') and len(local) >= 2)):
        return False, "local part"
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return False, "domain"
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(lbl) for lbl in labels) or labels[-1].isdigit():
        return False, "domain"
    return True, ""


# An RFC 2047 encoded-word; group 1 is its encoding (B or Q).
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?([bBqQ])\?[^?\s]*\?=")


def _word_text(word: str, errors: str) -> str | None:
    """The decoded text of one encoded-word (its bytes decoded with `errors`), None when it does not decode."""
    try:
        return "".join(data.decode(charset, errors) for data, charset in email.header.decode_header(word)
                       if charset and isinstance(data, bytes))
    except (HeaderParseError, UnicodeError, LookupError, ValueError):
        return None


def _base64_ascii(value: str) -> str | None:
    """The text of the base64 encoded-words in `value` when it is all printable ASCII, which needs no
    encoding (RFC 2047 is for what ASCII cannot write): mail software encodes only what it must, bulk tools
    encode every name so that a filter reading the raw field finds no words. None otherwise, or when a word
    does not decode."""
    shown = []
    for m in _ENCODED_WORD.finditer(value):
        if m.group(1) in "bB":
            if (word := _word_text(m.group(), "strict")) is None:
                return None
            shown.append(word)
    text = "".join(shown)
    return text if text and all(" " <= c <= "~" for c in text) else None


def _encoded_parts(value: str) -> list[str]:
    """The decoded text of each RFC 2047 encoded-word in `value` (the word as written when it does not decode)."""
    return [text if (text := _word_text(m.group(), "replace")) is not None else m.group()
            for m in _ENCODED_WORD.finditer(value)]


def _single_domain(value: str) -> str | None:
    pairs = lenient_addresses.getaddresses([value])
    addrs = [a for _n, a in pairs if a]
    return _norm(addrs[0]).rpartition("@")[2] if len(addrs) == 1 and _norm(addrs[0]) else None  # type: ignore[union-attr]


def analyze_from(header: HeaderBlock | bytes) -> FromAnalysis:
    """Read the From header of a message's header section: the parsed block (`SpooledMessage.header`)
    or its raw bytes as received (parsed here by `HeaderBlock`). Never raises."""
    syms: list[Symbol] = []
    block = header if isinstance(header, HeaderBlock) else HeaderBlock.parse(header)
    fields = _fields(block, syms)
    froms = [f for f in fields if f.name.lower() == "from"]
    if not froms or not froms[0].value.strip():
        return FromAnalysis(None, None, (*syms, Symbol("FROM_MISSING")))
    if len(froms) > 1:
        return FromAnalysis(None, None, (*syms, Symbol("FROM_MULTIPLE_HEADERS", str(len(froms)))))
    if froms[0].name != "From":
        syms.append(Symbol("FROM_NAME_CASE", froms[0].name))
    try:
        return _analyze_field(froms[0].value, syms, fields)
    except RecursionError:  # comments nested a thousand deep: the stdlib parsers recurse per level
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", "comments nested too deep")))


def _analyze_field(value: str, syms: list[Symbol], fields: list[_Field]) -> FromAnalysis:
    """The From value's reading: its size and bytes first, then the parser vote."""
    if len(value) > MAX_FROM_LENGTH:
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", f"{len(value)} characters long")))
    if _CTL.search(value):
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", "invalid bytes or control characters")))
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        return _legacy_8bit(value, syms, fields)
    return _analyze_value(value, syms, fields)


def _legacy_8bit(value: str, syms: list[Symbol], fields: list[_Field]) -> FromAnalysis:
    """A From with raw bytes that are not UTF-8: every legacy reading must give the same ASCII address (the
    bytes then sit in the display name, where they change what is shown, not who sent it); else refused."""
    raw = value.encode("utf-8", "surrogateescape")
    readings = [_analyze_value(raw.decode(cs, "replace"), list(syms), fields) for cs in LEGACY_CHARSETS]
    first = readings[0]
    if first.address is None or not first.address.isascii() or any(
            r.refuse or r.address != first.address for r in readings):
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", "invalid bytes or control characters")))
    return FromAnalysis(first.address, first.domain, (*first.symbols, Symbol("FROM_RAW_8BIT", first.display_name[:60])),
                        first.display_name)


def _analyze_value(value: str, syms: list[Symbol], fields: list[_Field]) -> FromAnalysis:
    """The parser vote on one unfolded From value (no control characters, no undecodable bytes)."""
    simple = _SIMPLE.match(value)
    if simple:
        # Plain `Name <local@domain>` or `local@domain`: no quoting, comments, encoded-words or specials,
        # so every parser reads the same single address; the three-parser vote is skipped (it is slow).
        return _finish(syms, fields, simple.group(2) or simple.group(3), [], (simple.group(1) or "").strip())
    strict, display, comments, error = _strict(value)
    compat = [a for _n, a in lenient_addresses.getaddresses([value])]
    try:
        header = _REGISTRY("From", value)
        modern = [f"{a.username}@{a.domain}" for a in header.addresses]  # type: ignore[attr-defined]
        defects = [str(d) for d in header.defects if "InvalidHeader" in type(d).__name__]
        misplaced = bool(defects) and all(d in _ENCODED_WORD_DEFECTS for d in defects)
        modern_bad = bool(defects) and not misplaced
    except (HeaderParseError, IndexError, ValueError, TypeError, AttributeError):
        modern, modern_bad, misplaced = [], True, False
    decoded = decoded_text(value)  # what a naive MUA shows: encoded-words decoded, then nothing else
    naive = [a for _n, a in lenient_addresses.getaddresses([decoded])] if decoded != value else compat

    if len(strict) > 1 or len([a for a in modern if a != "@"]) > 1 or len([a for a in compat if a]) > 1:
        return FromAnalysis(None, None, (*syms, Symbol("FROM_MULTIPLE_ADDRESSES", value[:100])))
    if error or not strict:
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", error or "no address")))
    ours = _norm(strict[0])
    views: dict[str, list[str | None]] = {"compat32": [_norm(a) for a in compat if a],
                                          "headerregistry": [_norm(a) for a in modern]}
    if decoded != value:
        if any(re.search(r"[@<>,;:\"]", part) for part in _encoded_parts(value)):
            syms.append(Symbol("FROM_ENCODED_ADDRESS", decoded[:100]))
        plain = _base64_ascii(value)
        if plain is not None:
            syms.append(Symbol("FROM_BASE64_ASCII", plain[:60]))
        views["decoded"] = [*sorted({_norm(a) or "" for a in naive if a})]  # the same address twice is no trick
    if ours is not None and re.search(r"[@<>]", ours.rpartition("@")[0]):
        return FromAnalysis(None, None, (*syms, Symbol("FROM_AMBIGUOUS", f"quoted local part {ours[:100]}")))
    for name, view in views.items():
        if ours is None or view != [ours]:
            got = ",".join(str(v) for v in view) or "nothing"
            return FromAnalysis(None, None, (*syms, Symbol("FROM_AMBIGUOUS", f"{name} reads {got}, we read {ours}")))
    if modern_bad or (misplaced and any(s.name == "FROM_ENCODED_ADDRESS" for s in syms)):
        return FromAnalysis(None, None, (*syms, Symbol("FROM_UNPARSEABLE", "headerregistry defects")))
    if misplaced:
        syms.append(Symbol("FROM_ENCODED_QUOTED", "encoded-word inside a quoted display name (RFC 2047 §5)"))
    return _finish(syms, fields, strict[0].strip(), comments, display)


def _finish(syms: list[Symbol], fields: list[_Field], address: str, comments: list[str],
            display: str) -> FromAnalysis:
    """The agreed address: validated, then the display name, comments and Sender looked at."""
    ok, what = _valid(address)
    if not ok:
        return FromAnalysis(None, None, (*syms, Symbol("FROM_INVALID_DOMAIN" if what == "domain" else
                                                       "FROM_UNPARSEABLE", address[:100])))
    ours = _norm(address)
    assert ours is not None
    domain = ours.rpartition("@")[2]
    if domain and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    for comment in comments:
        if _address_like(decoded_text(comment)):
            syms.append(Symbol("FROM_COMMENT_ADDRESS", comment[:100]))
    shown = decoded_text(display)
    found = _address_like(shown)
    if found:
        other = found.rpartition("@")[2].lower().rstrip(".")
        if organizational_domain(other) != organizational_domain(domain):
            syms.append(Symbol("FROM_DISPLAY_SPOOF", other))
        else:
            syms.append(Symbol("FROM_DISPLAY_ADDRESS", found))
    senders = [f for f in fields if f.name.lower() == "sender"]
    if len(senders) == 1 and len(senders[0].value) <= MAX_FROM_LENGTH:
        sender_domain = _single_domain(senders[0].value)
        if sender_domain and organizational_domain(sender_domain) != organizational_domain(domain):
            syms.append(Symbol("FROM_SENDER_MISMATCH", sender_domain))
    return FromAnalysis(f"{ours.rpartition('@')[0]}@{domain}", domain, tuple(syms), shown.strip().strip('"'))


__all__ = ["EMITS", "REFUSING", "FromAnalysis", "analyze_from"]
