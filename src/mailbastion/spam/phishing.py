"""Phishing rules: what account-theft mail does that ordinary mail does not.

    list(phishing_symbols(feats)) -> [Symbol("FROM_BRAND_MISMATCH", "paypal≠evil.example"), ...]

Each rule is a generic mechanism, not a remembered string: a link whose text names another site than its
target (RFC 3986 authority compared by registrable domain), a link with a user name before the host, a
page on free hosting or behind an open redirect, a `data:` URI that is a whole page, a form asking for a
password (in the body or in an attached HTML file), a well-known brand in the display name sent from a
domain that is not the brand's, a word that mixes Latin with Cyrillic or Greek letters (a homograph),
letters dressed up as mathematical symbols to dodge filters, and account-plus-threat language; mail sent out
of someone else's Microsoft 365 tenant (signed only by an unrelated tenant's default domain, or not signed at
all), a lapsed security-suite subscription from a domain that is not the vendor's, and a web form's notification
whose name field a bot filled with an exchange sum. The lists they match against live in spam/lexicon.py. Rules
never raise and never do I/O.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from itertools import chain
from urllib.parse import unquote

from mailbastion.core import lenient_addresses
from mailbastion.core.verdict import Symbol
from mailbastion.spam.domains import has_known_suffix, registrable_domain
from mailbastion.spam.features import MessageFeatures, carried_hosts
from mailbastion.spam.lexicon import (
    ABUSED_TLDS,
    ACCOUNT_CUES,
    ADVANCE_FEE_CUES,
    AMBIGUOUS_BRANDS,
    BRANDS,
    CREDENTIAL_CUES,
    FREE_HOSTING,
    FREEMAIL,
    IMAGE_HOSTS,
    PRIZE_CUES,
    RENEWAL_CUES,
    SECURITY_PRODUCT_CUES,
    SECURITY_VENDORS,
    SENDER_HOSTING,
    SHARED_STORAGE,
    URGENCY_CUES,
)
from mailbastion.spam.lookalike import fold_confusables, shipped_list

PHISHING_SYMBOLS = frozenset({
    "HTML_LINK_MISMATCH", "URI_IP", "URI_USERINFO", "URI_FREE_HOSTING", "URI_REDIRECTOR", "DATA_URI",
    "HTML_FORM", "HTML_FORM_PASSWORD", "HTML_ATTACHMENT", "HTML_ATTACHMENT_SCRIPT", "FROM_BRAND_MISMATCH",
    "FREEMAIL_BRAND", "MIXED_SCRIPT", "STYLED_UNICODE", "PHISH_ACCOUNT_URGENCY", "REPLYTO_DOMAIN_MISMATCH",
    "FROM_FREE_HOSTING", "FROM_EMOJI", "URI_IMAGE_HOST", "URI_HOST_INVALID", "PRIZE_SCAM", "URI_SHARED_STORAGE",
    "TEXT_INVISIBLE_SPLIT", "HTML_OFFSCREEN", "PHISH_CREDENTIAL",
    "ADVANCE_FEE", "LINK_ONLY_BODY", "FROM_DISPLAY_DIGITS", "TO_IN_SUBJECT", "ABUSED_TLD", "URI_LONG_LABEL",
    "DKIM_FOREIGN_TENANT", "WEBFORM_MONEY_LURE", "SECURITY_RENEWAL_LURE", "MS365_UNSIGNED", "FROM_STYLED_DOMAIN",
    "HEX_ENCODED_ADDRESS", "URI_NO_VOWELS", "URI_FRAGMENT_ADDRESS", "FROM_DISPLAY_DOMAIN",
})

# Link text that is a URL or a bare domain: "https://www.bank.example/login", "www.bank.example", "bank.example".
_SHOWN_URL_RE = re.compile(r"(?i)^\s*(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})(?:[:/?#]\S*)?\s*$")
_BRAND_RE = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(b) for b in sorted(BRANDS, key=len, reverse=True))
                       + r")(?![a-z0-9])")
# An organisation's role in a display name: a person's free-mail account does not speak for one.
_ROLE_RE = re.compile(r"(?i)\b(?:support|service|services|team|security|account|billing|bank|banking|admin|"
                      r"administrator|helpdesk|help desk|customer care|department|notification|no-?reply|mailbox|"
                      r"webmail|payroll|verification|official)\b")
# The registrable domains of the shipped frequently impersonated domains (spam/data/impersonated_domains.txt),
# read once when the module is loaded: the rules themselves do no I/O.
_IMPERSONATED = frozenset(registrable_domain(d) for d in shipped_list())
_USERINFO_RE = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^/?#\s]*@")
_DATA_URI_RE = re.compile(r"(?i)(?:href|action|src|data)\s*=\s*[\"']?\s*data:(?:text/html|application/)")
# What every match of _DATA_URI_RE holds: "data:" in any case (the only characters IGNORECASE matches to a, d and
# t are their two cases), so "a:" or "A:". Checked first: most pages have no data: URI at all, and the rule's own
# pattern tries four words at every position of a page of up to 64 KB (~0.2 ms).
_DATA_URI_CUE = re.compile(r"(?i)data:")
_FORM_RE = re.compile(r"(?i)<form\b")
_PASSWORD_RE = re.compile(r"""(?i)<input\b[^>]*?(?:type\s*=\s*["']?password|name\s*=\s*["']?[^"'>\s]*(?:pass|pwd|senha))""")
_SCRIPT_RE = re.compile(r"(?i)<script\b|window\.location|location\.(?:href|replace)|\batob\s*\(|\beval\s*\(|"
                        r"document\.write|http-equiv\s*=\s*[\"']?refresh")
_IMG_SRC_RE = re.compile(r"""(?i)<img\b[^>]*?\bsrc\s*=\s*["']?https?://([^/"'\s>:]+)""")
_EMOJI_RE = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\U0001F1E6-\U0001F1FF]")
_LATIN = re.compile(r"[A-Za-z]")
_GREEK_CYRILLIC = re.compile(r"[\u0370-\u03ff\u0400-\u04ff]")
_WORD = re.compile(r"\w{3,}")
# Invisible characters between two Latin letters ("W\u034fe a\u034fr\u034fe"): the words read normally and match no
# filter. Combining grapheme joiner, zero-width space/joiners, word joiner, invisible operators, BOM, variation
# selectors and tag characters. (Soft hyphens are left out: German hyphenation puts them inside words; Persian
# and Indic scripts need ZWNJ/ZWJ, and emoji need ZWJ and VS16, but not between Latin letters.)
_INVISIBLE_SPLIT_RE = re.compile("[A-Za-z][\u034f\u200b-\u200d\u2060-\u2064\ufeff\ufe00-\ufe0f"
                                 "\U000e0000-\U000e01ef]+[A-Za-z]")
# An address as it stands in a To header; a domain without a dot counts too (an internal host, or an address
# anonymised for a corpus: the recipient's address in the subject is the sign, whatever its domain).
_ADDRESS_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*")
# A host label of thirty characters or more that mixes letters and digits, below the registrable domain: a
# name generated per message ("qulfu0q6zp89efwww93rqulfu0q6zp89efwww93rqulfu.example.online").
_LONG_LABEL_RE = re.compile(r"^(?=.*\d)(?=.*[a-z])[a-z0-9-]{30,}$")
INVISIBLE_SPLIT_MIN = 3
# A word (a run of non-space) that holds a URL. Matches start only where a word does: a search from inside a word
# that holds no URL would scan the rest of the word back and forth for nothing (quadratic in its length), and one
# from inside a word that holds one starts later than the search from the word's start, which wins.
_URL_TEXT_RE = re.compile(r"(?<!\S)\S*(?:https?://|www\.)\S*")
LINK_ONLY_MAX_CHARS = 20  # text beside the links, below which a message is only a link
# Content pushed far out of view by CSS (a 470,000-pixel margin, a 2,000-viewport-high spacer, a text indent
# of minus several thousand pixels): the filter reads one text, the reader sees another.
_OFFSCREEN_RE = re.compile(r"(?i)(?:margin(?:-top|-left)?|top|left|text-indent|height|padding-top)\s*:\s*-?"
                           r"(?:\d{5,}(?:\.\d+)?\s*px|\d{4,}(?:\.\d+)?\s*(?:vh|vw|em|rem))")
# What every match of _OFFSCREEN_RE holds (a colon, spaces, maybe a minus, four digits), found by a search that
# skips from colon to colon instead of trying seven property names at every position of the page.
_OFFSCREEN_CUE = re.compile(r":\s*-?\d{4}")
# The signing domain of a DKIM-Signature field (RFC 6376 §3.5 "d=" tag).
_DKIM_D_RE = re.compile(r"(?i)(?:^|;)\s*d\s*=\s*([^;\s]+)")
# Microsoft 365 signs a tenant's mail with its default domain (<tenant>.onmicrosoft.com) until the organisation
# publishes DKIM keys for its own domain.
_TENANT_SUFFIX = ".onmicrosoft.com"
# Exchange Online names its messages <...@<server>.<region>.prod.outlook.com> and leaves through
# *.outbound.protection.outlook.com; it DKIM-signs everything its tenants send (with the tenant's default domain
# when the organisation has published no key of its own). Microsoft's own consumer domains are another path.
_EXO_MSGID_SUFFIX = ".prod.outlook.com>"
_EXO_OUTBOUND = "outbound.protection.outlook.com"
_MICROSOFT_CONSUMER = ("outlook.com", "hotmail.com", "live.com", "msn.com")
# What bots write into a web form's name fields (a WordPress registration, a shop account, a contact form), which
# the site then mails out in its own notification: a host name, a dash and a sum in crypto or at an exchange
# ("www.x.blogspot.pe - 97781 USD KRAKEN", "y.pages.dev - WITHDRAW FUNDS 120097 USDT"); a sum in dollars or euros
# alone is an invoice line.
_FORM_LURE_WORDS = ("BTC", "USDT", "ETH", "BNB", "DOGECOIN", "BITCOIN", "BINANCE", "KRAKEN", "COINBASE", "BYBIT",
                    "WITHDRAW")
_FORM_LURE_RE = re.compile(
    r"(?<![\w.-])(?:[a-z0-9-]+\.)+[a-z]{2,}\s+-\s+(?=[A-Z0-9 .,$€]{0,30}\d)"
    r"(?=[A-Z0-9 .,$€]{0,30}\b(?:" + "|".join(_FORM_LURE_WORDS) + r")\b)"
    r"[A-Z0-9 .,$€]{3,40}")
# A run of six or more digits in a display name: a "protocol" or account number dressed as the sender.
_DISPLAY_DIGITS_RE = re.compile(r"\d{6,}")
# A mail address written in hexadecimal ("726f647269676f40686f746d61696c2e636f6d" = rodrigo@hotmail.com) inside a
# link or a Reply-To, From or List-Unsubscribe field: bulk tools track the recipient that way so that no address
# shows in the raw text. At least 8 bytes of hex; the decoded bytes must be ASCII holding local@domain.tld.
_HEX_RUN_RE = re.compile(r"[0-9A-Fa-f]{16,}")
# The local part starts where the run of its characters starts (the look-behind), so a long run with no address
# after it is read once, not again from each of its characters.
_HEX_ADDRESS_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_HEX_FIELDS = ("reply-to", "from", "list-unsubscribe")
MAX_HEX_RUN = 2048  # hex digits decoded per run (an address is far shorter); longer runs are read to here
# Seven letters in a row of a link's host with no vowel, h or y among them ("srgdvstc.plp7.ru"): generated
# names; no word of a natural language and no brand spells that (SpamAssassin's URI_NOVOWEL idea).
_NO_VOWELS_RE = re.compile(r"(?i)[bcdfgjklmnpqrstvwxz]{7}")
# A link's fragment that is an address ("https://site.example/login.html#bob@example.com", "#email=bob%40..."):
# a phishing kit fills its login form from it; a fragment never reaches the server, so no tracking or unsubscribe
# link needs one there. The whole fragment must be the address (or key=address): an image proxy's fragment is
# the proxied URL (".../logo@2x.png") and a web app's route ("#/invite?email=...") is more than an address.
_FRAGMENT_ADDRESS_RE = re.compile(
    r"(?:[\w.-]{1,40}=)?[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Hex or decimal dotless forms (http://3232235777/) also reach an address.
        return host.isdigit() or (host.startswith("0x") and all(c in "0123456789abcdefx." for c in host))
    return True


def _under(host: str, suffixes: tuple[str, ...]) -> bool:
    return any(host == s or host.endswith("." + s) for s in suffixes)


def is_free_hosting(host: str) -> bool:
    return _under(host, FREE_HOSTING)


def brand_in(display: str) -> str | None:
    """The well-known brand a display name shows ('PayPal Service' -> 'paypal'), else None."""
    folded = re.sub(r"[^a-z0-9&.]+", " ", fold_confusables(display)).strip()
    m = _BRAND_RE.search(folded)
    if m is None:
        return None
    brand = str(m.group(1))
    if brand in AMBIGUOUS_BRANDS and m.start() != 0:
        return None  # "Mark Chase", "Lockergnome's Apple news": a word, not the sender
    return brand


def brand_owns(brand: str, home: str) -> bool:
    """Whether a registrable domain can be the brand's own: a label of it (split at dots and hyphens) is one
    of the brand's words, or, for words of four letters or more, starts or ends with one ('paypal-
    communication.com', 'facebookmail.com', 'kreissparkasse-koeln.de'). Short words must be a whole label:
    'bb' is Banco do Brasil's bb.com.br, not 'bbatendimento.lb'."""
    labels = re.split(r"[.-]", home)
    joined = home.replace("-", "").split(".")
    for word in BRANDS[brand]:
        for label in (*labels, *joined):
            if label == word or (len(word) >= 4 and (label.startswith(word) or label.endswith(word))):
                return True
    return False


def _related(a: str, b: str) -> bool:
    """Whether two names share five letters in a row (or one holds the other): 'contosoltd' and 'contoso'."""
    a, b = re.sub(r"[^a-z0-9]", "", a.lower()), re.sub(r"[^a-z0-9]", "", b.lower())
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    return any(a[i:i + 5] in b for i in range(len(a) - 4))


def foreign_tenant(feats: MessageFeatures) -> str | None:
    """The signing domain when every DKIM signature is a Microsoft 365 tenant's default domain and the tenant's
    name has nothing in common with the From domain: mail sent through someone else's (often a throwaway trial)
    tenant. An organisation that has not yet published its own DKIM keys signs as <its name>.onmicrosoft.com."""
    domain = feats.from_domain
    if not domain or domain.endswith(_TENANT_SUFFIX):
        return None  # From the tenant's own default domain: FROM_FREE_HOSTING's
    signers = [m.group(1).lower().rstrip(".") for v in feats.header("dkim-signature") if (m := _DKIM_D_RE.search(v))]
    if not signers or not all(d.endswith(_TENANT_SUFFIX) for d in signers):
        return None
    tenant = signers[0][: -len(_TENANT_SUFFIX)]
    if _related(tenant, registrable_domain(domain).split(".")[0]):
        return None
    return signers[0]


def unsigned_exchange_online(feats: MessageFeatures) -> bool:
    """Sent out of an Exchange Online tenant (its Message-ID, its outbound hop) with no DKIM signature at all: not
    how a tenant's own users send; mail pushed through a relay connector of someone else's tenant is."""
    domain = feats.from_domain
    if not domain or feats.header("dkim-signature") or _under(domain, _MICROSOFT_CONSUMER + (_TENANT_SUFFIX[1:],)):
        return False
    ids = feats.header("message-id")
    if not ids or not ids[0].strip().lower().endswith(_EXO_MSGID_SUFFIX):
        return False
    return any(_EXO_OUTBOUND in v.lower() for v in feats.header("received"))


def _mixed_word(text: str) -> str | None:
    if text.isascii() or not _GREEK_CYRILLIC.search(text):  # isascii: a flag of the str, no scan
        return None  # no word can mix scripts: one search instead of one per word
    for w in _WORD.findall(text):
        if _LATIN.search(w) and _GREEK_CYRILLIC.search(w):
            return str(w)
    return None


def has_data_uri(page: str) -> bool:
    """A `data:` URI that is a whole page (_DATA_URI_RE), searched for only where "data:" is."""
    return ("a:" in page or "A:" in page) and _DATA_URI_CUE.search(page) is not None \
        and _DATA_URI_RE.search(page) is not None


def offscreen(page: str) -> re.Match[str] | None:
    """_OFFSCREEN_RE's first match, searched for only where a colon and four digits are."""
    return _OFFSCREEN_RE.search(page) if _OFFSCREEN_CUE.search(page) else None


def form_lure(text: str) -> re.Match[str] | None:
    """_FORM_LURE_RE's first match, searched for only when one of its words (case-sensitive) is in the text."""
    return _FORM_LURE_RE.search(text) if any(w in text for w in _FORM_LURE_WORDS) else None


def invisible_splits(head: str, body: str) -> list[str]:
    """The words split by invisible characters in the head and the first 20,000 characters of the body. Every
    character the pattern looks for is outside ASCII, and str.isascii() is a flag of the str: ASCII text has none."""
    if head.isascii() and body.isascii():
        return []
    return _INVISIBLE_SPLIT_RE.findall(f"{head}\n{body[:20000]}")


def without_urls(text: str) -> str:
    """`text` without its words that hold a URL ("http://", "https://" or "www."); a text with neither "://" nor
    "www." has none, and is not searched."""
    if "://" not in text and "www." not in text:
        return text
    return _URL_TEXT_RE.sub("", text)


def _styled(text: str) -> bool:
    """Letters dressed as other symbols: mathematical alphanumerics (U+1D400..), full-width forms, small
    capitals (U+1D00..), circled or squared letters."""
    if text.isascii():  # a flag of the str: every range below is outside ASCII
        return False
    return any("\U0001d400" <= c <= "\U0001d7ff" or "\uff21" <= c <= "\uff5a" or "\u1d00" <= c <= "\u1dbf"
               or "\u2460" <= c <= "\u24ff" or "\U0001f130" <= c <= "\U0001f189" for c in text)


def _styled_domain(domain: str) -> bool:
    """`_styled` letters that IDNA 2008 disallows in a domain: all of them but the small capitals U+1D00-U+1D2B,
    which it allows (a registry's tables may still refuse them)."""
    return _styled(domain) and any(not "\u1d00" <= c <= "\u1d2b" for c in domain if not c.isascii())


def phishing_symbols(feats: MessageFeatures) -> Iterator[Symbol]:
    yield from _links(feats)
    yield from _markup(feats)
    yield from _sender(feats)
    yield from _text(feats)


def hex_address(text: str) -> str | None:
    """The first mail address written in hexadecimal inside `text` (either byte alignment), or None."""
    for m in _HEX_RUN_RE.finditer(text):
        run = m.group(0)[:MAX_HEX_RUN]
        for shift in (0, 1):
            digits = run[shift:]
            data = bytes.fromhex(digits[: len(digits) // 2 * 2])
            if b"@" not in data or not data.isascii():
                continue
            found = _HEX_ADDRESS_RE.search(data.decode("ascii"))
            if found:
                return found.group(0)
    return None


def _fragment_address(url: str) -> bool:
    scheme, _sep, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or "#" not in rest:
        return False
    return _FRAGMENT_ADDRESS_RE.fullmatch(unquote(rest.partition("#")[2][:400]).strip()) is not None


def _links(feats: MessageFeatures) -> Iterator[Symbol]:
    home = feats.from_registrable_domain
    for a in feats.anchors:
        m = _SHOWN_URL_RE.match(a.shown) if a.host and a.shown else None
        if m is None:
            continue  # only link text that is itself a URL or a domain can lie about the target
        shown_host = m.group(1).lower()
        shown, target = registrable_domain(shown_host), registrable_domain(a.host)
        if not has_known_suffix(shown_host) or _is_ip(a.host) or shown == target:
            continue
        # No hidden destination: a link whose query carries the site it shows (a tracker that forwards there), or,
        # carrying none, one through the sender's own domain, which the From names (a newsletter's click counter),
        # unless the text shows a frequently impersonated domain ("www.paypal.com" through the sender's own site).
        carried = {registrable_domain(h) for h in carried_hosts(a.url)}
        if shown in carried or (not carried and target == home and shown not in _IMPERSONATED):
            continue
        yield Symbol("HTML_LINK_MISMATCH", f"{shown_host}→{a.host}"[:120])
        break
    hosts = feats.reader_hosts  # "vk.com/away.php?to=https%3A%2F%2Ftinyurl.com%2F..." sends the reader to tinyurl.com
    ip = next((h for h in hosts if _is_ip(h)), None)
    if ip:
        yield Symbol("URI_IP", ip)
    userinfo = next((u for u in feats.urls if _USERINFO_RE.match(u)), None)
    if userinfo:
        yield Symbol("URI_USERINFO", userinfo[:80])
    free = next((h for h in hosts if is_free_hosting(h)), None)
    if free:
        yield Symbol("URI_FREE_HOSTING", free)
    # Storage links in mail from the storage provider itself (a share notification) are what it is for.
    shared = next((h for h in hosts if _under(h, SHARED_STORAGE) and registrable_domain(h) != home), None)
    if shared:
        yield Symbol("URI_SHARED_STORAGE", shared)
    if feats.redirect_hosts:  # a link carries another web address in its query: the first site forwards
        yield Symbol("URI_REDIRECTOR", feats.redirect_hosts[0][:80])
    pictures = [h.lower() for h in _IMG_SRC_RE.findall(feats.html)] if feats.html else []  # hosts of <img src>
    image = next((h for h in pictures if _under(h, IMAGE_HOSTS)), None)
    if image:
        yield Symbol("URI_IMAGE_HOST", image)
    # RFC 3986 §3.2.2 / RFC 5890: a host is ASCII letters, digits, hyphens and dots (IDNs travel as xn--).
    bad = next((h for h in hosts if not h.isascii() or any(c in h for c in "%\"=<>")), None)
    if bad:
        yield Symbol("URI_HOST_INVALID", bad[:60])
    long_label = next((h for h in hosts if h.isascii() and any(_LONG_LABEL_RE.match(lbl) for lbl in
                                                                 h.split(".")[:-2])), None)
    if long_label:
        yield Symbol("URI_LONG_LABEL", long_label[:60])
    # The sender's domain, where replies go (Reply-To), and the hosts a reader is sent to.
    reply_domain = feats.reply_to_address.rpartition("@")[2]
    abused = next((h for h in (feats.from_domain, reply_domain, *hosts) if h and h.rpartition(".")[2] in ABUSED_TLDS),
                  None)
    if abused:
        yield Symbol("ABUSED_TLD", abused[:60])
    # Hosts a reader is sent to, not those only pictures come from: the image CDNs and tracking pixels of honest
    # senders carry such names ("static.ctctcdn.com", Constant Contact's images; "bcp.crwdcntrl.net", a pixel).
    picture_hosts = set(pictures)
    targets = (*(a.host for a in feats.anchors), *(h for h in hosts if h not in picture_hosts))
    consonants = next((h for h in targets if _NO_VOWELS_RE.search(h)), None)
    if consonants:
        yield Symbol("URI_NO_VOWELS", consonants[:60])
    fragment = next((u for u in feats.urls if _fragment_address(u)), None)
    if fragment:
        yield Symbol("URI_FRAGMENT_ADDRESS", fragment[:80])
    hexed = next((f"{where}: {found}" for where, text in (
        *(("link", u) for u in feats.urls), *((k, v) for k, v in feats.raw_headers if k in _HEX_FIELDS))
        if (found := hex_address(text))), None)
    if hexed:
        yield Symbol("HEX_ENCODED_ADDRESS", hexed[:80])


def _markup(feats: MessageFeatures) -> Iterator[Symbol]:
    page = feats.html + "\n" + feats.attached_markup
    if has_data_uri(page):
        yield Symbol("DATA_URI")
    if _PASSWORD_RE.search(page):
        yield Symbol("HTML_FORM_PASSWORD", "attachment" if _PASSWORD_RE.search(feats.attached_markup) else "body")
    elif _FORM_RE.search(page):
        yield Symbol("HTML_FORM")
    pushed = offscreen(page)
    if pushed:
        yield Symbol("HTML_OFFSCREEN", pushed.group(0)[:40])
    markup_files = [a for a in feats.attachments if a.extension in ("htm", "html", "shtml", "xhtml", "svg", "hta",
                                                                      "mht", "mhtml") or a.content_type in
                    ("text/html", "image/svg+xml", "application/xhtml+xml")]
    if markup_files:
        name = markup_files[0].extension or markup_files[0].content_type
        if _SCRIPT_RE.search(feats.attached_markup):
            yield Symbol("HTML_ATTACHMENT_SCRIPT", name)
        else:
            yield Symbol("HTML_ATTACHMENT", name)


def _sender(feats: MessageFeatures) -> Iterator[Symbol]:
    domain = feats.from_domain
    if not domain:
        return
    # A sender domain written in mathematical, full-width or circled letters ("𝗩𝗲𝗿𝗸𝗮𝗱𝗲.hr", "𝐢𝐝.𝐚𝐩𝐩𝐥𝐞.🅒🅞🅜"):
    # it displays as the plain domain it imitates and cannot exist (IDNA 2008 disallows those characters).
    senders = (lenient_addresses.parseaddr(v)[1].rpartition("@")[2] for v in feats.header("sender"))
    styled = next((d for d in chain((domain, feats.reply_to_address.rpartition("@")[2]), senders)
                   if _styled_domain(d)), None)  # Sender parsed only when From and Reply-To are plain
    if styled:
        yield Symbol("FROM_STYLED_DOMAIN", styled[:60])
    home = registrable_domain(domain)
    if _under(domain, SENDER_HOSTING):
        yield Symbol("FROM_FREE_HOSTING", domain)
    if _EMOJI_RE.search(feats.from_display):
        yield Symbol("FROM_EMOJI", feats.from_display[:40])
    if _DISPLAY_DIGITS_RE.search(feats.from_display):
        yield Symbol("FROM_DISPLAY_DIGITS", feats.from_display[:40])
    brand = brand_in(feats.from_display) if feats.from_display else None
    if brand is not None:
        if domain in FREEMAIL:
            yield Symbol("FREEMAIL_BRAND", f"{brand}@{domain}")
        elif not brand_owns(brand, home):
            yield Symbol("FROM_BRAND_MISMATCH", f"{brand}≠{home}")
    elif domain in FREEMAIL and _ROLE_RE.search(feats.from_display):
        yield Symbol("FREEMAIL_BRAND", f"{feats.from_display[:40]}@{domain}")
    else:
        # The display name is a site's name ("RankMyPix.com", "www.shop.example") that the address is not on: the
        # reader takes the message for that site's. A brand already named is FROM_BRAND_MISMATCH's, weighed more.
        shown = _SHOWN_URL_RE.match(feats.from_display)
        if shown and has_known_suffix(shown.group(1)) and registrable_domain(shown.group(1)) != home:
            yield Symbol("FROM_DISPLAY_DOMAIN", f"{shown.group(1)}≠{home}"[:60])
    tenant = foreign_tenant(feats)
    if tenant:
        yield Symbol("DKIM_FOREIGN_TENANT", f"{tenant} for {domain}"[:80])
    if unsigned_exchange_online(feats):
        yield Symbol("MS365_UNSIGNED", domain[:60])
    reply = feats.reply_to_address.rpartition("@")[2]
    if reply and not feats.has_list_headers and registrable_domain(reply) != home:
        yield Symbol("REPLYTO_DOMAIN_MISMATCH", f"{home}→{registrable_domain(reply)}")


def _text(feats: MessageFeatures) -> Iterator[Symbol]:
    head = f"{feats.subject or ''} {feats.from_display}"
    word = _mixed_word(head) or _mixed_word(feats.body_text[:5000])
    if word:
        yield Symbol("MIXED_SCRIPT", word[:40])
    if _styled(head):
        yield Symbol("STYLED_UNICODE", unicodedata.normalize("NFKC", head)[:60])
    recipient = lenient_addresses.parseaddr(next(iter(feats.header("to")), ""))[1].lower()
    if "@" in recipient and _ADDRESS_RE.fullmatch(recipient):
        where = "subject" if recipient in (feats.subject or "").lower() else \
            "sender name" if recipient in feats.from_display.lower() else None
        if where:
            yield Symbol("TO_IN_SUBJECT", f"{recipient} in the {where}"[:60])
    split = invisible_splits(head, feats.body_text)
    if len(split) >= INVISIBLE_SPLIT_MIN:
        yield Symbol("TEXT_INVISIBLE_SPLIT", f"{len(split)} words")
    text = f"{feats.subject or ''}\n{feats.body_text[:20000]}"
    account = ACCOUNT_CUES.search(text)
    urgency = URGENCY_CUES.search(text) if account else None
    if account and urgency:
        yield Symbol("PHISH_ACCOUNT_URGENCY", f"{account.group(0)} + {urgency.group(0)}"[:60])
    credential = CREDENTIAL_CUES.search(text)
    if credential:
        yield Symbol("PHISH_CREDENTIAL", credential.group(0)[:60])
    fee = {m.group(0).lower() for m in ADVANCE_FEE_CUES.finditer(feats.body_text[:20000])}
    if len(fee) >= 2:
        yield Symbol("ADVANCE_FEE", ", ".join(sorted(fee))[:60])
    # A message that is nothing but a link (a shared file, a "see this"): the text is on the other side.
    if feats.urls and len(without_urls(feats.body_text[:5000]).strip()) < LINK_ONLY_MAX_CHARS:
        yield Symbol("LINK_ONLY_BODY", feats.urls[0][:60])
    product = SECURITY_PRODUCT_CUES.search(text)
    renewal = RENEWAL_CUES.search(text) if product else None
    if product and renewal and not (feats.from_domain and any(
            brand_owns(b, feats.from_registrable_domain) for b in SECURITY_VENDORS)):
        yield Symbol("SECURITY_RENEWAL_LURE", f"{product.group(0)} + {renewal.group(0)}"[:60])
    lure = form_lure(text)
    if lure:
        yield Symbol("WEBFORM_MONEY_LURE", lure.group(0).strip()[:60])
    prizes = {m.group(0).lower() for m in PRIZE_CUES.finditer(f"{feats.from_display}\n{text}")}
    if len(prizes) >= 2:
        yield Symbol("PRIZE_SCAM", ", ".join(sorted(prizes))[:60])
