"""Domains and names that imitate ours or others': confusable skeletons, script mixing, display names.

    ours = OwnIdentity(domains={"example.com"}, names={"alice smith"})
    ours.lookalike_of("examp1e.com")      -> "example.com"  (skeleton match)
    ours.lookalike_of("example.com.evil.net") -> "example.com"  (our name as a sub-domain prefix)
    ours.imitated_in("Example.com IT") -> "example.com"

    protected = ProtectedDomains.of(own=["example.com"], partners=["supplier.test"], impersonated=shipped_list())
    protected.imitated("xn--pypal-4ve.com")   -> Imitation("paypal.com", "brand")
    label_problems("xn--pypal-4ve.com")       -> [LabelProblem("pаypal", "mixed", "Cyrl+Latn")]

Confusables are Unicode TR39's (§4 skeletons), computed by ICU's SpoofChecker through PyICU: the
reference implementation, the one browsers consult before showing an IDN. A-labels (xn--) are decoded
with `idna` (IDNA 2008 / UTS 46), the Python codec (IDNA 2003) as a fallback. Our `skeleton` adds what
a domain name needs on top of TR39: case and diacritics folded (a dot below is invisible at mail-client
sizes), a few glyphs TR39 maps elsewhere than a domain font shows them (Cyrillic palochka ӏ reads as l,
vv as w), and the older hand-written folds (0→o, $→s).

A domain is a look-alike of ours when it is not ours and its skeleton equals ours, or its first label
is one edit away from ours (labels of 5+ characters), or it carries our whole domain as a prefix of a
foreign domain (`OwnIdentity.lookalike_of`, used by the spam rules). It imitates a protected domain
(ours, a partner's, a frequently impersonated one) when it is none of them and its registrable domain,
or its registrable label under any suffix, has the same skeleton while being written differently
(`ProtectedDomains.imitated`). A label is suspect on its own when it mixes scripts beyond TR39's highly
restrictive level (§5.2), mixes digit systems or stacks invisible marks, or is written entirely in
another script yet reads as ASCII (whole-script confusable, §4; `label_problems`). Pure, no I/O but
reading the shipped list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import icu  # type: ignore[import-untyped]  # PyICU: ICU's SpoofChecker (Unicode TR39)
import idna

from mailbastion.spam.domains import registrable_domain

_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "к": "k", "м": "m", "т": "t", "в": "b",
    "н": "h", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k", "υ": "u", "ε": "e",
    "0": "o", "1": "l", "|": "l", "$": "s", "ı": "i", "ℓ": "l",
})
_BAIT_SUFFIXES = frozenset({"secure", "login", "support", "mail", "it", "hr", "verify", "account",
                            "online", "portal", "help", "helpdesk", "sso", "auth"})
DISPLAY_NAME_MAX_CHARS = 1000
_ADDR_RE = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_NAME_FOLD_RE = re.compile(r"[^a-z]+")
_ASCII_LABEL = re.compile(r"^[a-z0-9-]+$")

_SKELETONS = icu.SpoofChecker()  # getSkeleton only: a configured checker is safe to share (ICU uspoof.h)
_RESTRICTION = icu.SpoofChecker()
_RESTRICTION.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL | icu.USpoofChecks.MIXED_NUMBERS
                       | icu.USpoofChecks.INVISIBLE)
# TR39 §5.2 highly restrictive: one script, or Latin with Han and Japanese kana, Han and Bopomofo, Han and
# Hangul. Chromium's IDN display policy starts from the same level.
_RESTRICTION.setRestrictionLevel(icu.URestrictionLevel.HIGHLY_RESTRICTIVE)
_NO_SCRIPT = frozenset({"Zyyy", "Zinh", "Zzzz"})  # Common, Inherited, Unknown: digits, hyphen, marks
# Top-level domains in whose script a whole-script label is expected (Chromium's rule, simplified).
_SCRIPT_TLDS = {
    "Cyrl": frozenset({"ru", "su", "by", "ua", "kz", "kg", "tj", "uz", "mn", "bg", "mk", "rs", "ba", "me"}),
    "Grek": frozenset({"gr", "cy", "eu"}),
}


def to_unicode(domain: str) -> str:
    """A-labels decoded (xn--...), lower case; undecodable labels are kept as they are."""
    labels = []
    for label in domain.lower().strip(".").split("."):
        if label.startswith("xn--"):
            try:
                label = idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                try:
                    label = label.encode("ascii").decode("idna")  # IDNA 2003: labels IDNA 2008 disallows
                except (UnicodeError, ValueError):
                    pass
        labels.append(label)
    return ".".join(labels)


def to_ascii(domain: str) -> str:
    """The A-label form, lower case; the input itself (lower case) when no IDNA form exists."""
    d = domain.lower().strip(".")
    if d.isascii():
        return d
    try:
        return idna.encode(d, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        try:
            return d.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return d


def fold_confusables(text: str) -> str:
    """Lower case, accents dropped, confusable letters mapped to ASCII (Cyrillic а -> a, 0 -> o)."""
    s = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in s if not unicodedata.combining(c)).translate(_CONFUSABLES)


def tr39_skeleton(text: str) -> str:
    """The TR39 §4 skeleton of `text` (NFKC case-folded first), lower-cased, diacritics dropped, with
    the palochka read as l. The strict form: whole-script confusables are judged on it."""
    s = unicodedata.normalize("NFKC", text).casefold().replace("ӏ", "l")
    s = _SKELETONS.getSkeleton(0, s).lower()
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


@lru_cache(maxsize=20000)
def skeleton(text: str) -> str:
    """`tr39_skeleton` after the older hand-written folds, for comparing domain names: hyphens and
    underscores dropped, `rn` written `m`, `vv` written `w`. Equal skeletons read alike. Never raises."""
    s = tr39_skeleton(fold_confusables(to_unicode(text) if "." in text else text))
    return s.replace("rn", "m").replace("vv", "w").replace("-", "").replace("_", "")


def is_punycode(domain: str) -> bool:
    return any(label.startswith("xn--") for label in domain.lower().split("."))


def _within_one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return a == b
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        # a transposition of two neighbours (Damerau)
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def fold_name(name: str) -> str:
    """'Smith, Alice' / 'alice.smith' -> 'alice smith' (sorted words, letters only)."""
    s = unicodedata.normalize("NFKD", name.lower())
    words = [w for w in _NAME_FOLD_RE.split("".join(c for c in s if not unicodedata.combining(c))) if w]
    return " ".join(sorted(words))


@dataclass(frozen=True)
class OwnIdentity:
    """Our domains (A-label form) and the folded names of our users (from local parts like `alice.smith`)."""

    domains: frozenset[str] = frozenset()
    names: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, domains: Iterable[str], addresses: Iterable[str] = ()) -> OwnIdentity:
        names = set()
        for addr in addresses:
            local = addr.partition("@")[0]
            folded = fold_name(local)
            if " " in folded:  # only two-word names; `info` or `admin` are not a person
                names.add(folded)
        return cls(frozenset(d.lower().strip(".") for d in domains if d), frozenset(names))

    def is_ours(self, domain: str) -> bool:
        d = domain.lower().strip(".")
        return any(d == o or d.endswith("." + o) for o in self.domains)

    def lookalike_of(self, domain: str) -> str | None:
        """The domain of ours that `domain` imitates, or None (also None for our own domains)."""
        d = domain.lower().strip(".")
        if not d or self.is_ours(d):
            return None
        sk = skeleton(d)
        for o in self.domains:
            o_sk = skeleton(o)
            if sk == o_sk or sk.endswith("." + o_sk):
                return o
            if ("." + o + ".") in ("." + d + "."):
                return o  # example.com.evil.net: our whole name inside a foreign domain
            o_label = o_sk.partition(".")[0]
            labels = sk.split(".")
            if len(o_label) >= 5 and len(labels) >= 2:
                first = labels[-2]
                if _within_one_edit(first, o_label):
                    return o
                if first.startswith(o_label) and first[len(o_label):].lstrip("-") in _BAIT_SUFFIXES:
                    return o  # example-secure.net, examplelogin.com
        return None

    def imitated_in(self, display_name: str) -> str | None:
        """What of ours a display name shows: an address at our domain, our domain, or a user's name. Read up to
        DISPLAY_NAME_MAX_CHARS: a display name is a few words, and the address pattern tried at each of 15,000
        "_" costs a second."""
        text = display_name[:DISPLAY_NAME_MAX_CHARS].lower()
        if not text:
            return None
        for m in _ADDR_RE.finditer(text):
            dom = m.group(1)
            if self.is_ours(dom) or self.lookalike_of(dom):
                return m.group(0)
        for o in self.domains:
            # The whole domain only: our bare name ("Example") is too common a word to judge on.
            if re.search(rf"(?<![\w.-]){re.escape(o)}(?![\w-])", text):
                return o
        folded = fold_name(display_name)
        if folded and folded in self.names:
            return folded
        return None


# -- scripts (TR39 §5) ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LabelProblem:
    label: str  # the label as it reads (Unicode)
    kind: str  # "mixed": scripts or digit systems mixed, or invisible marks; "whole": another script reading as ASCII
    scripts: str  # "Cyrl+Latn"


def _scripts(label: str) -> list[str]:
    return sorted({icu.Script.getScript(ord(c)).getShortName() for c in label} - _NO_SCRIPT)


def label_problems(domain: str) -> list[LabelProblem]:
    """The labels of `domain` (A-labels or Unicode) a reader cannot trust to be what they look like."""
    labels = to_unicode(domain).split(".")
    tld = labels[-1] if labels else ""
    out: list[LabelProblem] = []
    for label in labels:
        if label.isascii():
            continue
        scripts = _scripts(label)
        if _RESTRICTION.check(label):
            out.append(LabelProblem(label, "mixed", "+".join(scripts) or "marks"))
        elif (len(scripts) == 1 and scripts[0] != "Latn" and tld.isascii()
              and tld not in _SCRIPT_TLDS.get(scripts[0], ())):
            if _ASCII_LABEL.match(tr39_skeleton(label)):
                out.append(LabelProblem(label, "whole", scripts[0]))
    return out


# -- protected domains: ours, the site's partners, the frequently impersonated -------------------------

SOURCES = ("own", "partner", "brand")  # in order of precedence when a domain is on several lists


@dataclass(frozen=True, slots=True)
class Imitation:
    protected: str  # the domain imitated (A-label form)
    source: str  # "own" | "partner" | "brand"


def shipped_list() -> list[str]:
    """The frequently impersonated domains shipped in `spam/data/impersonated_domains.txt`."""
    text = resources.files("mailbastion.spam").joinpath("data/impersonated_domains.txt").read_text("utf-8")
    return parse_domain_list(text)


def parse_domain_list(text: str) -> list[str]:
    """One domain a line; `#` starts a comment. Lower case, A-label form."""
    out = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(to_ascii(entry))
    return out


@dataclass(frozen=True)
class ProtectedDomains:
    """Skeleton indexes of the protected domains, built once; `imitated` is two dictionary lookups."""

    domains: dict[str, str]  # A-label domain -> source
    by_skeleton: dict[str, tuple[str, str]]  # skeleton of the registrable domain -> (domain, source)
    by_label: dict[str, tuple[str, str]]  # skeleton of its registrable label -> (domain, source)

    @classmethod
    def of(cls, *, own: Iterable[str] = (), partners: Iterable[str] = (),
           impersonated: Iterable[str] = ()) -> ProtectedDomains:
        domains: dict[str, str] = {}
        for source, names in (("own", own), ("partner", partners), ("brand", impersonated)):
            for name in names:
                d = to_ascii(name)
                if d and "." in d:
                    domains.setdefault(d, source)
        by_skeleton: dict[str, tuple[str, str]] = {}
        by_label: dict[str, tuple[str, str]] = {}
        for d, source in domains.items():
            by_skeleton.setdefault(skeleton(d), (d, source))
            label = to_unicode(registrable_domain(d)).partition(".")[0]
            if len(skeleton(label)) >= 3:  # two letters match too much by chance
                by_label.setdefault(skeleton(label), (d, source))
        return cls(domains, by_skeleton, by_label)

    def is_protected(self, domain: str) -> bool:
        d = to_ascii(domain)
        while d:
            if d in self.domains:
                return True
            d = d.partition(".")[2]
        return False

    def imitated(self, domain: str) -> Imitation | None:
        """The protected domain that `domain` imitates, or None (also None for a protected domain or a
        subdomain of one). Never raises."""
        ascii_form = to_ascii(domain)
        if not ascii_form or self.is_protected(ascii_form):
            return None
        reg = registrable_domain(ascii_form)
        found = self.by_skeleton.get(skeleton(reg))
        if found is None:
            label = to_unicode(reg).partition(".")[0]
            hit = self.by_label.get(skeleton(label))
            # The same name under another suffix (paypal.net) is no homograph; a name written otherwise
            # that reads the same (pаypal.net, paypa1.net) is.
            if hit is not None and to_unicode(registrable_domain(hit[0])).partition(".")[0] != label:
                found = hit
        return Imitation(*found) if found is not None else None
