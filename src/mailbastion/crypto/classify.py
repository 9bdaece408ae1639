"""Is a message confidential? The subject tag, the Sensitivity header, a site-named classification header,
and content rules (payment-card numbers that pass the Luhn check, national-ID patterns the site names).

    classifier = Classifier.from_settings(settings.encryption)
    c = classifier.is_confidential(message, envelope)      # Classification(confidential, reasons)
    if c: ...                                              # reasons: ("subject tag [confidential]", ...)

Pure: reads the message's header block and its decoded text parts (`SpooledMessage.parts`, parsed once
and shared with the other checks), at most `content_scan_bytes` of text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage

__all__ = ["Classification", "Classifier", "find_card_numbers", "luhn_ok"]

# 13 to 19 digits, optionally in groups separated by one space or hyphen (how people write card numbers).
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_TEXT_TYPES = ("text", "html")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card_brand(digits: str) -> bool:
    """Issuer prefixes and lengths of the card schemes (ISO/IEC 7812 IINs), so that a Luhn-valid order
    number (one in ten of any digit string passes Luhn) is not taken for a card."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= int(digits[:6]) <= 622925:
        return n in (16, 19)  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return n in (14, 16, 19)  # Diners Club
    if p2 == 62:
        return 16 <= n <= 19  # UnionPay
    if p2 in (50, 56, 57, 58) or digits[:2] in ("63", "67"):
        return 12 <= n <= 19  # Maestro
    return False


def find_card_numbers(text: str) -> list[str]:
    """Payment-card numbers in `text` (separators removed): a scheme's prefix and length, and Luhn-valid."""
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0))
        if len(set(digits)) > 1 and _is_card_brand(digits) and luhn_ok(digits):
            out.append(digits)
    return out


@dataclass(frozen=True, slots=True)
class Classification:
    confidential: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.confidential


NOT_CONFIDENTIAL = Classification(False)


class Classifier:
    def __init__(self, *, subject_tags: Iterable[str] = ("[confidential]",),
                 sensitivity: Iterable[str] = ("company-confidential",), classification_header: str = "",
                 classification_values: Iterable[str] = ("confidential", "secret", "restricted"),
                 content_rules: Iterable[str] = ("payment_card",), patterns: Mapping[str, str] | None = None,
                 scan_bytes: int = 1024 * 1024) -> None:
        self.subject_tags = tuple(t.lower() for t in subject_tags)
        self.sensitivity = frozenset(v.lower() for v in sensitivity)
        self.classification_header = classification_header.lower()
        self.classification_values = frozenset(v.lower() for v in classification_values)
        self.cards = "payment_card" in content_rules
        self.patterns = {name: re.compile(p) for name, p in (patterns or {}).items()}
        self.scan_bytes = scan_bytes

    @classmethod
    def from_settings(cls, e: Any) -> Classifier:
        return cls(subject_tags=e.subject_tags, sensitivity=e.sensitivity,
                   classification_header=e.classification_header, classification_values=e.classification_values,
                   content_rules=e.content_rules, patterns=e.national_id_patterns, scan_bytes=e.content_scan_bytes)

    def is_confidential(self, message: SpooledMessage | bytes, envelope: Envelope | None = None) -> Classification:
        """Why the message is confidential (every reason found), or NOT_CONFIDENTIAL. `envelope` is accepted
        for rules on senders or recipients; none uses it yet."""
        if not isinstance(message, SpooledMessage):
            message = SpooledMessage(message)
        header = message.header
        reasons: list[str] = []
        for subject in header.values("subject"):
            low = subject.lower()
            reasons += [f"subject tag {tag}" for tag in self.subject_tags if tag in low]
        for value in header.values("sensitivity"):
            if value.strip().lower() in self.sensitivity:
                reasons.append(f"Sensitivity: {value.strip()}")
        if self.classification_header:
            for value in header.values(self.classification_header):
                if value.strip().lower() in self.classification_values:
                    reasons.append(f"{self.classification_header}: {value.strip()}")
        if self.cards or self.patterns:
            reasons += self._content(message)
        return Classification(True, tuple(dict.fromkeys(reasons))) if reasons else NOT_CONFIDENTIAL

    def _texts(self, message: SpooledMessage) -> Iterable[str]:
        budget = self.scan_bytes
        yield from message.header.values("subject")
        for part in message.parts:
            if budget <= 0:
                return
            if part.reading or not (part.sniffed_type in _TEXT_TYPES or part.declared_type.startswith("text/")):
                continue
            text = part.text(limit=budget)
            budget -= len(part.data)
            yield text

    def _content(self, message: SpooledMessage) -> list[str]:
        reasons: list[str] = []
        cards = 0
        found: set[str] = set()
        for text in self._texts(message):
            if self.cards:
                cards += len(find_card_numbers(text))
            for name, pattern in self.patterns.items():
                if name not in found and pattern.search(text):
                    found.add(name)
        if cards:
            reasons.append(f"content: payment card number ({cards})")
        reasons += [f"content: {name}" for name in sorted(found)]
        return reasons
