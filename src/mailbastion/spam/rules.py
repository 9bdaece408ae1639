"""The hand-written spam and phishing rules: each looks at the extracted features and names what it saw.

    rules = SpamRules(identity=OwnIdentity.of(["example.com"]), past_hours=96, future_hours=12)
    rules.evaluate(feats, now=time.time(), is_outside=True) -> [Symbol("HTML_LINK_MISMATCH", "paypal.com→evil.test"), ...]

Every rule is a method `_r_<name>` returning symbols; `RULE_SYMBOLS` lists every name they can emit (the
check declares it, `config/scores/spam.toml` weighs it). Rules never raise on odd input and never do I/O.
GTUBE is not here: it forces a verdict and lives in its own check (`policy/checks/spam_rules.py`).
Missing From/Date/Message-ID are the header check's (`policy/checks/headers.py`), not repeated here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from mailbastion.core.verdict import Symbol
from mailbastion.spam.domains import has_known_suffix, registrable_domain
from mailbastion.spam.features import MessageFeatures
from mailbastion.spam.lookalike import OwnIdentity, fold_confusables, is_punycode

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

SHORTENERS = frozenset({
    "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly", "cutt.ly",
    "shorturl.at", "tiny.cc", "rb.gy", "t.ly", "s.id", "v.gd", "bl.ink", "soo.gd", "clck.ru", "qr.ae", "lnkd.in",
    "shorte.st", "adf.ly", "x.co", "tr.im", "su.pr", "mcaf.ee", "db.tt", "t2m.io", "urlz.fr", "u.to",
})
FREEMAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "aol.com", "gmx.com",
    "gmx.net", "gmx.de", "mail.com", "mail.ru", "yandex.ru", "yandex.com", "protonmail.com", "proton.me",
    "icloud.com", "me.com", "web.de", "zoho.com", "qq.com", "163.com",
})

# Link text that is a URL or a bare domain: "https://www.bank.example/login", "www.bank.example", "bank.example".
_SHOWN_URL_RE = re.compile(r"(?i)^\s*(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})(?:[:/?#]\S*)?\s*$")

# Brands phishers wear in display names, and the registrable-domain words their real mail comes from.
BRANDS: dict[str, tuple[str, ...]] = {
    "paypal": ("paypal",), "apple": ("apple", "icloud"), "icloud": ("apple", "icloud"),
    "microsoft": ("microsoft", "office", "outlook", "live", "azure", "sharepoint", "onmicrosoft"),
    "office 365": ("microsoft", "office", "outlook"), "outlook": ("microsoft", "outlook", "office", "live"),
    "onedrive": ("microsoft", "live", "sharepoint"), "sharepoint": ("microsoft", "sharepoint"),
    "amazon": ("amazon", "aws", "amazonses"), "netflix": ("netflix",), "coinbase": ("coinbase",),
    "metamask": ("metamask", "consensys"), "trust wallet": ("trustwallet",), "binance": ("binance",),
    "dhl": ("dhl",), "fedex": ("fedex",), "docusign": ("docusign",), "dropbox": ("dropbox",),
    "wells fargo": ("wellsfargo",), "chase": ("chase",), "bank of america": ("bankofamerica", "bofa"),
    "american express": ("americanexpress", "aexp"), "facebook": ("facebook", "facebookmail", "meta"),
    "instagram": ("instagram", "facebookmail"), "whatsapp": ("whatsapp",), "linkedin": ("linkedin",),
    "google": ("google", "gmail", "youtube"), "gmail": ("google", "gmail"), "adobe": ("adobe",),
    "norton": ("norton", "nortonlifelock", "gen"), "mcafee": ("mcafee",), "ledger": ("ledger",),
    "irs": ("irs",), "spotify": ("spotify",), "steam": ("steampowered", "steamcommunity"),
}
_BRAND_RE = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(b) for b in sorted(BRANDS, key=len, reverse=True))
                       + r")(?![a-z0-9])")

RULE_SYMBOLS = frozenset({
    "MISSING_SUBJECT", "EMPTY_SUBJECT", "SUBJECT_ALL_CAPS", "DATE_IN_PAST", "DATE_IN_FUTURE", "MIME_HTML_ONLY",
    "HTML_HIDDEN_TEXT", "HTML_LINK_MISMATCH", "URI_IP", "URI_SHORTENER", "LOOKALIKE_DOMAIN", "PUNYCODE_DOMAIN",
    "DISPLAY_NAME_IMPERSONATION", "FREEMAIL_REPLYTO", "FROM_BRAND_MISMATCH",
})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Hex or decimal dotless forms (http://3232235777/) also reach an address.
        return host.isdigit() or (host.startswith("0x") and all(c in "0123456789abcdefx." for c in host))
    return True


def _fold(text: str) -> str:
    """Letters only, confusables folded, single spaces: '.CoinBase-team' -> ' coinbase team', 'PayPa1' -> 'paypal'."""
    return re.sub(r"[^a-z]+", " ", fold_confusables(text))


def _base(host: str) -> str:
    return registrable_domain(host)


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
        out.extend(self._headers(feats, now))
        out.extend(self._html(feats))
        out.extend(self._urls(feats))
        out.extend(self._identity(feats, is_outside, ident))
        return out

    # -- header rules ----------------------------------------------------------------------------
    def _headers(self, feats: MessageFeatures, now: float) -> Iterator[Symbol]:
        if feats.subject is None:
            yield Symbol("MISSING_SUBJECT")
        elif not feats.subject.strip():
            yield Symbol("EMPTY_SUBJECT")
        else:
            letters = [c for c in feats.subject if c.isalpha()]
            if len(letters) >= 10 and sum(c.isupper() for c in letters) >= 0.9 * len(letters):
                yield Symbol("SUBJECT_ALL_CAPS")
        # A missing From, Date or Message-ID is the header check's (policy/checks/headers.py).
        if feats.date is not None:
            hours = (now - feats.date.timestamp()) / 3600
            if hours > self.past_hours:
                yield Symbol("DATE_IN_PAST", f"{hours / 24:.0f}d")
            elif -hours > self.future_hours:
                yield Symbol("DATE_IN_FUTURE", f"{-hours:.0f}h")
        brand = _BRAND_RE.search(_fold(feats.from_display)) if feats.from_display and feats.from_domain else None
        if brand is not None:
            home = registrable_domain(feats.from_domain)
            if not any(word in home for word in BRANDS[brand.group(1)]):
                yield Symbol("FROM_BRAND_MISMATCH", f"{brand.group(1)}≠{home}")
        if feats.reply_to_address and feats.from_address:
            rdom = feats.reply_to_address.rpartition("@")[2]
            if rdom in FREEMAIL and rdom != feats.from_domain:
                yield Symbol("FREEMAIL_REPLYTO", rdom)

    # -- HTML rules ------------------------------------------------------------------------------
    def _html(self, feats: MessageFeatures) -> Iterator[Symbol]:
        if feats.has_html_part and not feats.has_text_part:
            yield Symbol("MIME_HTML_ONLY")
        if len(feats.hidden_text.strip()) >= self.hidden_min_chars:
            yield Symbol("HTML_HIDDEN_TEXT", f"{len(feats.hidden_text)} chars")
        for a in feats.anchors:
            m = _SHOWN_URL_RE.match(a.shown) if a.host and a.shown else None
            if m is None:
                continue  # only link text that is itself a URL or a domain can lie about the target
            shown_host = m.group(1).lower()
            if has_known_suffix(shown_host) and not _is_ip(a.host) \
                    and registrable_domain(shown_host) != registrable_domain(a.host):
                yield Symbol("HTML_LINK_MISMATCH", f"{shown_host}→{a.host}"[:120])
                return

    # -- URL rules -------------------------------------------------------------------------------
    def _urls(self, feats: MessageFeatures) -> Iterator[Symbol]:
        hosts = feats.url_hosts
        ip = next((h for h in hosts if _is_ip(h)), None)
        if ip:
            yield Symbol("URI_IP", ip)
        short = next((h for h in hosts if h in SHORTENERS or _base(h) in SHORTENERS), None)
        if short:
            yield Symbol("URI_SHORTENER", short)

    # -- impersonation ---------------------------------------------------------------------------
    @staticmethod
    def _identity(feats: MessageFeatures, is_outside: bool, ident: OwnIdentity) -> Iterator[Symbol]:
        candidates = [feats.from_domain, feats.reply_to_address.rpartition("@")[2], *feats.url_hosts[:30]]
        puny = next((d for d in candidates if d and is_punycode(d)), None)
        if puny:
            yield Symbol("PUNYCODE_DOMAIN", puny)
        if ident.domains:
            for d in candidates:
                if d and not _is_ip(d):
                    ours = ident.lookalike_of(d)
                    if ours:
                        yield Symbol("LOOKALIKE_DOMAIN", f"{d}~{ours}")
                        break
        if is_outside and feats.from_display and not ident.is_ours(feats.from_domain):
            imitated = ident.imitated_in(feats.from_display)
            if imitated:
                yield Symbol("DISPLAY_NAME_IMPERSONATION", imitated)
