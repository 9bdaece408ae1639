"""Domains and names that imitate ours: look-alike domains, punycode, display-name impersonation.

    ours = OwnIdentity(domains={"example.com"}, names={"alice smith"})
    ours.lookalike_of("examp1e.com")      -> "example.com"  (skeleton match)
    ours.lookalike_of("example.com.evil.net") -> "example.com"  (our name as a sub-domain prefix)
    ours.imitated_in("Example.com IT") -> "example.com"

Skeletons fold Unicode confusables (Cyrillic and Greek look-alikes, as in Unicode TR 39) and the usual
ASCII tricks (0→o, 1→l, rn→m, vv→w) so `exаmple.com` with a Cyrillic а matches. A domain is a look-alike
when it is not ours and its skeleton equals ours, or its first label is one edit away from ours (for labels
of 5+ characters), or it carries our whole domain as a prefix of a foreign domain. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "к": "k", "м": "m", "т": "t", "в": "b",
    "н": "h", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k", "υ": "u", "ε": "e",
    "0": "o", "1": "l", "|": "l", "$": "s", "ı": "i", "ℓ": "l",
})
_BAIT_SUFFIXES = frozenset({"secure", "login", "support", "mail", "it", "hr", "verify", "account",
                            "online", "portal", "help", "helpdesk", "sso", "auth"})
_ADDR_RE = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_NAME_FOLD_RE = re.compile(r"[^a-z]+")


def to_unicode(domain: str) -> str:
    """A-labels decoded (xn--...); undecodable labels are kept as they are."""
    labels = []
    for label in domain.lower().strip(".").split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def fold_confusables(text: str) -> str:
    """Lower case, accents dropped, confusable letters mapped to ASCII (Cyrillic а -> a, 0 -> o)."""
    s = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in s if not unicodedata.combining(c)).translate(_CONFUSABLES)


def skeleton(text: str) -> str:
    s = unicodedata.normalize("NFKD", to_unicode(text) if "." in text else text.lower())
    s = "".join(c for c in s if not unicodedata.combining(c)).translate(_CONFUSABLES)
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
        """What of ours a display name shows: an address at our domain, our domain, or a user's name."""
        text = display_name.lower()
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
