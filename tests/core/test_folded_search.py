"""core/folded_search.py: an IGNORECASE pattern searched on folded text finds exactly what the pattern finds,
the sender's capitals kept in what it reports; what cannot be proven equal is left alone."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core.folded_search import FoldedPattern, first_chars, folded
from mailbastion.spam import lexicon

CUES = ["SPAM_PHRASE_RE", "GENERIC_GREETING_RE", "CREDENTIAL_CUES", "ADVANCE_FEE_CUES", "REMOVAL_CUES",
        "ACCOUNT_CUES", "URGENCY_CUES", "PRIZE_CUES", "SECURITY_PRODUCT_CUES", "RENEWAL_CUES"]
# Characters IGNORECASE treats specially (dotted and dotless i, long s, Kelvin sign, Angstrom sign, final sigma,
# micro sign, a combining mark that folds to iota) and some that fold to nothing at all.
TRICKY = "İıſKÅåσςΣµμͅιẞßÉéÜüÇçÑñ_-'%$@.\n\t ¹²٣"


def words() -> list[str]:
    found: set[str] = set()
    for name in CUES:
        source = getattr(lexicon, name).original.pattern
        found.update(w for w in re.findall(r"[^\W\d_]{2,}", re.sub(r"\\.", " ", source)))
    return sorted(found)


WORDS = words()


def mangle(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 4))
        if kind <= 1:
            w = draw(st.sampled_from(WORDS))
            style = draw(st.integers(0, 3))
            w = w.upper() if style == 0 else w.title() if style == 1 else w
            if draw(st.booleans()):  # one letter swapped for a case variant of it, or a tricky character
                i = draw(st.integers(0, len(w) - 1))
                w = w[:i] + draw(st.sampled_from(TRICKY + w[i].swapcase())) + w[i + 1:]
            parts.append(w)
        elif kind == 2:
            parts.append(draw(st.text(alphabet=TRICKY, max_size=4)))
        elif kind == 3:
            parts.append(str(draw(st.integers(0, 99))))
        else:
            parts.append(draw(st.text(max_size=6)))
        parts.append(draw(st.sampled_from([" ", "  ", "\n", ", ", "-", "", ". "])))
    return "".join(parts)


texts = st.composite(mangle)()


@pytest.mark.parametrize("name", CUES)
def test_every_cue_list_is_folded(name: str) -> None:
    assert isinstance(getattr(lexicon, name), FoldedPattern)


@settings(max_examples=300, deadline=None)
@given(text=texts, name=st.sampled_from(CUES))
def test_the_same_matches_as_ignorecase(text: str, name: str) -> None:
    fast = getattr(lexicon, name)
    slow = fast.original
    assert [(m.span(), m.group(0), m.groups()) for m in fast.finditer(text)] == \
        [(m.span(), m.group(0), m.groups()) for m in slow.finditer(text)]
    a, b = fast.search(text), slow.search(text)
    assert (a is None) == (b is None) and (a is None or (a.span(), a.group(0)) == (b.span(), b.group(0)))
    assert fast.findall(text) == slow.findall(text)


def test_capitals_are_kept_in_what_is_reported() -> None:
    m = lexicon.CREDENTIAL_CUES.search("Dear user, please VERIFY YOUR ACCOUNT today")
    assert m is not None and m.group(0) == "VERIFY YOUR ACCOUNT"
    assert lexicon.PRIZE_CUES.findall("You Won a ſweepstakes") == ["You Won", "ſweepstakes"]  # long s is an s


@pytest.mark.parametrize("source", [
    r"(?i)\bVerify\b",  # a capital: not its case class's representative
    r"(?i)[^a-z]+",  # a negated class
    r"(?i)\x41bc",  # an escape that names a character
    r"(?i)[0-z]",  # a range that holds capitals
    r"(?i)a(?-i:b)",  # a local flag
    r"(?i)\u03bc",  # micro and mu are one class; mu is not its representative
])
def test_what_cannot_be_proven_equal_is_left_alone(source: str) -> None:
    pattern = re.compile(source)
    assert folded(pattern) is pattern


def test_findall_is_re_findall_for_groups_that_take_no_part() -> None:
    pattern = re.compile(r"(?i)\b(?:(prize)|(lottery) (win))\b")
    fast = folded(pattern)
    assert isinstance(fast, FoldedPattern)
    text = "A PRIZE, a Lottery Win and a prize"
    assert fast.findall(text) == pattern.findall(text) == [("PRIZE", "", ""), ("", "Lottery", "Win"), ("prize", "", "")]
    one = re.compile(r"(?i)\b(?:x|(prize))\b")
    assert folded(one).findall("x Prize") == one.findall("x Prize") == ["", "Prize"]


def test_only_ignorecase_patterns_are_touched() -> None:
    plain = re.compile(r"\bverify\b")
    assert folded(plain) is plain
    multi = re.compile(r"(?i)^verify$", re.MULTILINE)
    assert folded(multi) is multi


# -- the folding of the last texts is kept ---------------------------------------------------------------------------

def _reference_fold(pattern: FoldedPattern, text: str) -> str:
    return text.translate(pattern._table)  # what `fold` did before it kept anything


@settings(max_examples=200, deadline=None)
@given(pool=st.lists(texts, min_size=1, max_size=8), order=st.lists(st.integers(0, 7), max_size=30),
       copies=st.lists(st.booleans(), max_size=30))
def test_a_kept_folding_is_the_folding_of_that_very_text(pool: list[str], order: list[int], copies: list[bool]) -> None:
    """Texts searched in any order, some the same object again, some an equal copy: each folding is the text's."""
    fast = lexicon.ACCOUNT_CUES
    assert isinstance(fast, FoldedPattern)
    for i, copy in zip(order, copies + [False] * len(order), strict=False):
        text = pool[i % len(pool)]
        if copy:
            text = "".join(list(text))  # an equal str, another object
        assert fast.fold(text) == _reference_fold(fast, text)
        m, ref = fast.search(text), fast.original.search(text)
        assert (m is None) == (ref is None) and (m is None or (m.span(), m.group(0)) == (ref.span(), ref.group(0)))


def test_a_folding_is_kept_for_its_own_table_only() -> None:
    """Two patterns with different tables fold the same text object each with its own table."""
    upper = FoldedPattern(re.compile("(?i)x"), re.compile("x"), {ord("a"): ord("b")})
    other = FoldedPattern(re.compile("(?i)x"), re.compile("x"), {ord("a"): ord("c")})
    text = "a banana"
    assert upper.fold(text) == "b bbnbnb"
    assert other.fold(text) == "c bcncnc"
    assert upper.fold(text) == "b bbnbnb"


def test_the_same_text_is_folded_once() -> None:
    text = "Verify your ACCOUNT " * 50
    first = lexicon.ACCOUNT_CUES.fold(text)
    assert lexicon.URGENCY_CUES.fold(text) is first  # another list, the same table: the kept folding


# -- the lookahead of the characters a match can begin with ---------------------------------------------------------

_ATOMS = ["a", "b", "1", " ", "-", "é", "[ab]", "[a-c]", "[\\d-]", r"\d", r"\w", r"\s", r"\W", ".", "[^a]",
          r"\b", r"(?<!\w)", r"(?=a)", r"(?!b)", "^", "$", ""]


def _regex(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
        children.map(lambda x: f"({x})"),
        st.tuples(children, st.sampled_from(["?", "*", "+", "{0,2}", "{1,2}", "{2}", "*?", "++", "{0}"])).map(
            lambda t: f"(?:{t[0]}){t[1]}"),
        children.map(lambda x: f"(?>{x})"),
    )


regexes = st.recursive(st.sampled_from(_ATOMS), _regex, max_leaves=8)


@settings(max_examples=600, deadline=None)
@given(source=regexes, text=st.text(alphabet="ab1 -\né_c", max_size=12))
def test_the_lookahead_changes_no_match(source: str, text: str) -> None:
    """Any small pattern: with its lookahead (when one can be told) it finds the same matches and groups."""
    try:
        plain = re.compile(source)
    except re.error:
        return
    ahead = first_chars(source, plain.flags)
    if ahead is None:
        return
    quick = re.compile(ahead + source)
    assert quick.groups == plain.groups
    assert [(m.span(), m.groups()) for m in quick.finditer(text)] == [(m.span(), m.groups()) for m in plain.finditer(text)]


@pytest.mark.parametrize(("source", "expected"), [
    (r"\b(?:verify|confirm) your", "(?=[cv])"),
    (r"(?<!\w)(100%|free)(?!\w)", "(?=[1f])"),
    (r"\b(?:(?:urgent and |strictly )?confidential|\d+ percent)", "(?=[\\dcsu])"),
    (r"(?:ab)*c", "(?=[ac])"),
    (r"a?", None),  # can match nothing: every position can match
    (r"\b(?:x|.)", None),  # any character
    (r"[^a]b", None),  # a negated class
])
def test_first_chars(source: str, expected: str | None) -> None:
    assert first_chars(source, re.UNICODE) == expected


@settings(max_examples=200, deadline=None)
@given(text=texts, name=st.sampled_from(CUES))
def test_every_cue_list_has_its_lookahead_and_the_same_matches_without_it(text: str, name: str) -> None:
    fast = getattr(lexicon, name)
    sensitive = fast._sensitive
    assert sensitive.pattern.startswith("(?=[")
    body = fast.original.pattern.removeprefix("(?i)")
    without = re.compile(body, sensitive.flags)
    folded_text = fast.fold(text)
    assert [(m.span(), m.groups()) for m in sensitive.finditer(folded_text)] == \
        [(m.span(), m.groups()) for m in without.finditer(folded_text)]
