"""Case-insensitive search of big word alternations, ~3x faster: fold the text once, match case-sensitively.

`re.IGNORECASE` makes every literal of a pattern a case-folding comparison, and a cue list of a hundred
words (spam/lexicon.py) is tried at every word start: ~0.1-0.3 ms per kilobyte of mail, per list. Folding
the text to the pattern's case once and matching without IGNORECASE gives the same matches at a third
of the cost.

Exactness, as `sre` defines IGNORECASE for a str pattern (Python 3.11, `re/_compiler.py`): a text
character x matches a pattern literal c when lower(x) and lower(c) are one character of the same case
class (`_sre.unicode_tolower`, joined by `re._compiler._EXTRA_CASES`: i/ı, s/ſ, k/K (Kelvin) ...). So the
text is rewritten, character for character (the length and every position stay), with each character of
such a class replaced by the class's representative (one table for every cased character, built once a
process). A character whose representative differs from it in `\\w`, `\\d` or `\\s` is left as it is, and a
pattern with a letter of such a class is refused, so such a character matches no literal either way; no
replacement changes what `\\w`, `\\d`, `\\s` or `\\b` see. `folded()` refuses a pattern it cannot prove
equivalent (and returns it unchanged): flags other than IGNORECASE, escapes that name characters (\\x, \\u,
\\N, octal), negated classes, inline flag groups, a letter that is not its class's representative.
Matches are reported on the original text (`group(0)` keeps the sender's capitals).

A cue list is tried at every word start, and sre tries each of its alternatives there in turn, with no quick
way to tell that none can begin with the letter at hand. So the case-sensitive pattern is given a lookahead of
the characters a match can begin with (`(?=[acp...])`, computed from the parsed pattern; no lookahead when that
set cannot be stated, e.g. the pattern can match the empty string): positions where no alternative can start fail
on one class test. A lookahead consumes nothing and captures nothing: the matches and groups are the same.

The spam rules search one text with many cue lists (the subject and body with six of them): the last few texts
folded are kept with their folding (by identity: the very same str object, held so that its id cannot be
reused), so a text is folded once whatever the number of lists searched in it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

# The standard library's own pattern parser (private modules of `re`, as in CPython 3.11-3.13): only for the
# first-character lookahead, which is an optimisation. A Python whose `re` lacks them, or parses into another
# shape (an unpacking error below), gets no lookahead: the same matches, as before the lookahead existed.
try:
    from re import _constants as _sre_c  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - CPython 3.11+ has them
    _sre_c = _sre_parse = None

__all__ = ["FoldedPattern", "folded"]

_FLAG_MASK = re.IGNORECASE | re.UNICODE  # a str pattern always carries UNICODE
_REFUSED = re.compile(r"\\[xuUN0-7pP]|\[\^|\[\]|\(\?[a-zA-Z-]+[:)]")
_CLASS = re.compile(r"\[((?:\\.|[^\]\\])+)\]")
_CASED_MAX = 0x1E944  # no character above this has a case mapping (Unicode 15)
_RECENT = 4  # texts whose folding is kept: the rules search about four texts (subject + body, slices of it)
# (text, table, folded text), newest first; replaced whole (one atomic rebinding), so threads may share it.
_recent: tuple[tuple[str, dict[int, int], str], ...] = ()


def _kind(ch: str) -> tuple[bool, bool, bool]:
    return bool(re.match(r"\w", ch)), bool(re.match(r"\d", ch)), bool(re.match(r"\s", ch))


@functools.cache
def _folding() -> tuple[dict[int, int], frozenset[int]]:
    """(the text's translation: each cased character -> its IGNORECASE class's representative; the characters
    that cannot be folded because their representative differs in \\w, \\d or \\s). Built once a process.
    Raises LookupError on a Python whose engine does not expose what this relies on."""
    try:
        import _sre

        from re._compiler import _EXTRA_CASES  # type: ignore[attr-defined]
    except ImportError:
        raise LookupError("this Python's re engine does not expose its case classes") from None
    classes: dict[int, int] = {}  # lower() value -> representative (smallest of its class)
    for lo, extra in _EXTRA_CASES.items():
        members = {lo, *extra}
        for m in members:
            classes[m] = min(members)
    table: dict[int, int] = {}
    unfoldable: set[int] = set()
    for cp in range(_CASED_MAX):
        lo = _sre.unicode_tolower(cp)
        rep = classes.get(lo, lo)
        if rep != cp:
            if _kind(chr(cp)) == _kind(chr(rep)):
                table[cp] = rep
            else:
                unfoldable.update((cp, rep))
    return table, frozenset(unfoldable)


def _letters(body: str) -> set[str] | None:
    """Every cased character the pattern can match literally: its letters, with classes' ranges expanded."""
    out = {ch for ch in re.sub(r"\\.", "", body) if ch.lower() != ch.upper()}
    for content in _CLASS.findall(body):
        tokens = re.findall(r"\\.|.", content)
        for i in range(1, len(tokens) - 1):
            if tokens[i] == "-" and len(tokens[i - 1]) == 1 and len(tokens[i + 1]) == 1:
                lo, hi = ord(tokens[i - 1]), ord(tokens[i + 1])
                if hi - lo > 5000:
                    return None
                out.update(ch for ch in map(chr, range(lo, hi + 1)) if ch.lower() != ch.upper())
    return out


try:
    _CATEGORIES = {
        _sre_c.CATEGORY_DIGIT: r"\d", _sre_c.CATEGORY_NOT_DIGIT: r"\D", _sre_c.CATEGORY_SPACE: r"\s",
        _sre_c.CATEGORY_NOT_SPACE: r"\S", _sre_c.CATEGORY_WORD: r"\w", _sre_c.CATEGORY_NOT_WORD: r"\W",
    }
    _ZERO_WIDTH = (_sre_c.AT, _sre_c.ASSERT, _sre_c.ASSERT_NOT)
    _REPEATS = (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT)
except AttributeError:  # pragma: no cover - no parser, or another one: no lookahead
    _sre_parse = None


def _char(code: int) -> str:
    """A character as class source: ASCII letters and digits as they are, anything else escaped."""
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\U{code:08x}"


def _starts(items: Any) -> tuple[set[str], bool] | None:
    """(the class items, as pattern source, one of which every match of the parsed sequence `items` begins with;
    whether the sequence can match the empty string), or None when that cannot be told."""
    found: set[str] = set()
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue  # consumes nothing: the next item begins the match (whatever the assertion checks)
        if op is _sre_c.LITERAL:
            found.add(_char(av))
            return found, False
        if op is _sre_c.IN:
            for kind, arg in av:
                if kind is _sre_c.LITERAL:
                    found.add(_char(arg))
                elif kind is _sre_c.RANGE:
                    found.add(f"{_char(arg[0])}-{_char(arg[1])}")
                elif kind is _sre_c.CATEGORY and arg in _CATEGORIES:
                    found.add(_CATEGORIES[arg])
                else:
                    return None  # NEGATE and anything else
            return found, False
        if op is _sre_c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            inner = None if add_flags or del_flags else _starts(sub)
        elif op is _sre_c.BRANCH:
            inner = (set(), False)
            for alternative in av[1]:
                one = _starts(alternative)
                if one is None:
                    return None
                inner = (inner[0] | one[0], inner[1] or one[1])
        elif op in _REPEATS:
            low, _high, sub = av
            one = _starts(sub)
            inner = None if one is None else (one[0], one[1] or low == 0)
        else:
            return None  # ANY, NOT_LITERAL, group references, atomic groups ...: not worth telling
        if inner is None:
            return None
        found |= inner[0]
        if not inner[1]:
            return found, False
    return found, True  # the whole sequence can match nothing at all


def first_chars(body: str, flags: int) -> str | None:
    """A lookahead `(?=[...])` of the characters every match of `body` (compiled with `flags`) begins with, or
    None when there is no such set (a match can be empty) or it cannot be told."""
    if _sre_parse is None:
        return None
    try:
        starts = _starts(_sre_parse.parse(body, flags))
    except (re.error, RecursionError, AttributeError, TypeError, ValueError):  # the last three: another parser
        return None
    if starts is None or starts[1] or not starts[0]:
        return None
    return "(?=[" + "".join(sorted(starts[0])) + "])"


class _Match:
    """A match of the folded text, reported on the original text."""

    __slots__ = ("_m", "string")

    def __init__(self, m: re.Match[str], string: str) -> None:
        self._m, self.string = m, string

    def group(self, *which: int | str) -> Any:
        if len(which) > 1:
            return tuple(self.group(w) for w in which)
        start, end = self._m.span(*which)
        return None if start < 0 else self.string[start:end]

    def __getitem__(self, which: int | str) -> Any:
        return self.group(which)

    def groups(self) -> tuple[str | None, ...]:
        return tuple(self.group(i) for i in range(1, self._m.re.groups + 1))

    def span(self, *which: int | str) -> tuple[int, int]:
        return self._m.span(*which)

    def start(self, *which: int | str) -> int:
        return self._m.start(*which)

    def end(self, *which: int | str) -> int:
        return self._m.end(*which)


class FoldedPattern:
    """`search`, `finditer` and `findall` of an IGNORECASE pattern, on folded text; anything else is the
    original pattern's (`sub`, `pattern` ...)."""

    def __init__(self, original: re.Pattern[str], sensitive: re.Pattern[str], table: dict[int, int]) -> None:
        self.original = original
        self._sensitive = sensitive
        self._table = table

    def fold(self, text: str) -> str:
        """`text` with every character replaced by its case class's representative; the same str object
        folded by the same table lately is not folded again."""
        global _recent
        recent = _recent
        table = self._table
        for seen, seen_table, done in recent:
            if seen is text and seen_table is table:
                return done
        done = text.translate(table)
        _recent = ((text, table, done), *recent[: _RECENT - 1])
        return done

    def search(self, text: str) -> _Match | None:
        m = self._sensitive.search(self.fold(text))
        return None if m is None else _Match(m, text)

    def finditer(self, text: str) -> Iterator[_Match]:
        for m in self._sensitive.finditer(self.fold(text)):
            yield _Match(m, text)

    def findall(self, text: str) -> list[Any]:
        """As `re.findall`: the match, its one group, or a tuple of its groups ("" for one that did not take part)."""
        out: list[Any] = []
        n = self._sensitive.groups
        for m in self.finditer(text):
            groups = tuple("" if g is None else g for g in m.groups())
            out.append(m.group(0) if n == 0 else groups[0] if n == 1 else groups)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def folded(pattern: re.Pattern[str]) -> re.Pattern[str] | FoldedPattern:
    """The faster equivalent of an IGNORECASE `pattern`, or `pattern` itself when it cannot be proven equal."""
    if not isinstance(pattern.pattern, str) or pattern.flags & ~_FLAG_MASK or not pattern.flags & re.IGNORECASE:
        return pattern
    source = pattern.pattern
    body = source[4:] if source.startswith("(?i)") else source
    if _REFUSED.search(body):
        return pattern
    letters = _letters(body)
    try:
        table, unfoldable = _folding()
    except LookupError:
        return pattern
    if letters is None or any(table.get(ord(ch), ord(ch)) != ord(ch) or ord(ch) in unfoldable for ch in letters):
        return pattern  # a letter that is not its class's representative, or whose class cannot be folded
    flags = pattern.flags & ~re.IGNORECASE
    try:
        sensitive = re.compile((first_chars(body, flags) or "") + body, flags)
    except re.error:
        return pattern
    return FoldedPattern(pattern, sensitive, table)
