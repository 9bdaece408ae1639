"""Faster equivalents in the spam stage, each held equal to the code it replaced (kept here as the reference) on
thousands of generated inputs."""

from __future__ import annotations

import itertools
import re

import mmh3
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.spam import phishing
from mailbastion.spam.features import extract_bytes
from mailbastion.spam.model import N_FEATURES, _hashable, feature_indices
from mailbastion.spam.phishing import form_lure, has_data_uri, offscreen, without_urls
from mailbastion.spam.tokens import _WORD_RE, MAX_BODY_CHARS, fold, tokens

# -- phishing.without_urls: the words that hold a URL taken out ---------------------------------------------------

_OLD_URL_TEXT_RE = re.compile(r"\S*(?:https?://|www\.)\S*")  # before: tried from every position of every word


def old_without_urls(text: str) -> str:
    return _OLD_URL_TEXT_RE.sub("", text)


# Pieces of URLs and near misses, the characters around them, and every kind of space str.split and \s know.
URL_BITS = ["http://", "https://", "http:/", "https:", "htt", "www.", "www", "WWW.", "://", ":", "/", "s", "w", ".",
            "x", "é", "a.b", " ", "  ", "\n", "\t", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85", "\xa0", "\u2003",
            "\u3000", "\u200b", "\ufeff"]
url_texts = st.lists(st.one_of(st.sampled_from(URL_BITS), st.text(max_size=3)), max_size=40).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=url_texts)
def test_without_urls_is_the_old_substitution(text: str) -> None:
    assert without_urls(text) == old_without_urls(text)


def test_without_urls_examples() -> None:
    text = "see https://a.example/x and www.b.example, or mailto:x@y;http://c.example\tnow"
    assert without_urls(text) == old_without_urls(text) == "see  and  or \tnow"
    assert without_urls("no link here") == "no link here"
    long_word = "x" * 5000 + " http://a.example"  # a long word without a URL is read once, not 5,000 times
    assert without_urls(long_word) == "x" * 5000 + " "


# -- phishing: the markup and web-form rules search only where their cue is ----------------------------------------
# The reference is each rule's own pattern searched on the whole text, as before.

PAGE_BITS = ["href", "HREF", "src", "Src", "action", "data", "DATA", "Data", "dAtA", "=", " ", "  ", "\"", "'", ":",
             "data:", "DATA:", "text/html", "TEXT/HTML", "application/", "a:", "A:", "margin", "MARGIN", "-top", "-left",
             "top", "left", "text-indent", "height", "padding-top", "-", "1", "12", "1234", "12345", "99999", "٣٣٣٣",
             ".5", ".", "px", "PX", "vh", "vw", "em", "rem", "\t", "\n", "\xa0", "<", ">", ";", "x", "é", "ſ", "K"]
_SPACES = st.sampled_from(["", " ", "  ", "\t", "\n", "\xa0"])
# Near misses of each rule's own shape: every piece right, or one of them wrong.
_offscreen_piece = st.tuples(
    st.sampled_from(["margin", "MARGIN", "margin-top", "Margin-Left", "top", "left", "text-indent", "height",
                     "padding-top", "width", "x"]), _SPACES, st.sampled_from([":", ";", "", "::"]), _SPACES,
    st.sampled_from(["", "-", "--", "+"]),
    st.one_of(st.sampled_from(["123", "1234", "12345", "٣٣٣٣", "1234567"]), st.text(alphabet="0123456789٣", max_size=7)),
    st.sampled_from(["", ".5", ".", ".55"]), _SPACES, st.sampled_from(["px", "PX", "vh", "VW", "em", "rem", "pt", ""]),
).map("".join)
_data_piece = st.tuples(
    st.sampled_from(["href", "HREF", "src", "action", "data", "Data", "x"]), _SPACES, st.sampled_from(["=", ":", ""]),
    _SPACES, st.sampled_from(["\"", "'", "", "\"\""]), _SPACES,
    st.sampled_from(["data:", "DATA:", "dAtA:", "data", "ata:", "dat a:"]),
    st.sampled_from(["text/html", "TEXT/HTML", "application/", "Application/", "image/png", "text/plain", ""]),
).map("".join)
pages = st.one_of(_offscreen_piece, _data_piece, st.lists(
    st.one_of(_offscreen_piece, _data_piece, st.sampled_from(PAGE_BITS), st.text(max_size=2)), max_size=12).map("".join))
LURE_BITS = ["www.x.example", "y.pages.dev", "a.b", "X.Y", ".", " - ", "  -  ", "-", " -", "- ", "\n", " ", "BTC", "btc",
             "USDT", "ETH", "BNB", "DOGECOIN", "BITCOIN", "BINANCE", "KRAKEN", "COINBASE", "BYBIT", "WITHDRAW",
             "WITHDRAW FUNDS", "BTCX", "XBTC", "97781", "120097", "1", " USD", "USD", "$", "€", ",", "A", "Z", "é", "_"]
_lure_piece = st.tuples(
    st.sampled_from(["www.x.example", "y.pages.dev", "a.b", ".x.y", "x", "X.Y", "-a.bc"]),
    st.sampled_from([" - ", "  -  ", "-", " -\n", " ", "\t-\t"]),
    st.lists(st.sampled_from(LURE_BITS[12:] + ["97781", "120097", "12", "USD", "$", "€", ",", ".", "A", ""]),
             max_size=6).map(" ".join),
).map("".join)
lure_texts = st.one_of(_lure_piece, st.lists(st.one_of(_lure_piece, st.sampled_from(LURE_BITS), st.text(max_size=2)),
                                             max_size=8).map("".join))


def _same(a: re.Match[str] | None, b: re.Match[str] | None) -> bool:
    return (a is None) == (b is None) and (a is None or b is None or (a.span(), a.group(0)) == (b.span(), b.group(0)))


@settings(max_examples=600, deadline=None)
@given(page=pages)
def test_has_data_uri_is_the_pattern_alone(page: str) -> None:
    assert has_data_uri(page) == (phishing._DATA_URI_RE.search(page) is not None)


@settings(max_examples=600, deadline=None)
@given(page=pages)
def test_offscreen_is_the_pattern_alone(page: str) -> None:
    assert _same(offscreen(page), phishing._OFFSCREEN_RE.search(page))


@settings(max_examples=600, deadline=None)
@given(text=lure_texts)
def test_form_lure_is_the_pattern_alone(text: str) -> None:
    assert _same(form_lure(text), phishing._FORM_LURE_RE.search(text))


def test_the_markup_and_lure_rules_still_fire() -> None:
    assert has_data_uri('<a HREF = "DATA:text/html;base64,AAAA">') and not has_data_uri("<img src='data:image/png'>")
    m = offscreen('<div style="margin-top: -470000px">')
    assert m is not None and m.group(0) == "margin-top: -470000px"
    assert offscreen('<div style="margin-top: 40px">') is None
    m = form_lure("Name: www.x.blogspot.pe - 97781 USD KRAKEN")
    assert m is not None and m.group(0) == "www.x.blogspot.pe - 97781 USD KRAKEN"
    assert form_lure("www.x.blogspot.pe - 97781 USD kraken") is None


# -- model.feature_indices: np.unique by a sort and a comparison of neighbours ------------------------------------

def old_feature_indices(tokens: list[str]) -> np.ndarray:
    hashes = np.fromiter(map(mmh3.hash, _hashable(tokens)), dtype=np.int64)
    return np.unique(np.abs(hashes) % N_FEATURES)


# Few distinct tokens drawn many times: most lists hold repeats, as a message's words do.
token_lists = st.lists(st.one_of(st.sampled_from(["w:free", "w:money", "b:free money", "s:re", "st:len_0", "u:a.example",
                                                  "w:café", "h:from:alice", "x"]), st.text(max_size=4)), max_size=60)


@settings(max_examples=600, deadline=None)
@given(tokens=token_lists)
def test_feature_indices_is_the_old_unique(tokens: list[str]) -> None:
    new, old = feature_indices(tokens), old_feature_indices(tokens)
    assert new.dtype == old.dtype and new.tolist() == old.tolist()


def test_feature_indices_of_colliding_columns() -> None:
    """Two tokens whose hashes differ but land in the same column (and one hash of -2**31): once each, sorted."""
    by_column: dict[int, str] = {}
    pair = None
    for i in range(200000):
        token = f"t{i}"
        column = abs(mmh3.hash(token)) % N_FEATURES
        if column in by_column:
            pair = (by_column[column], token)
            break
        by_column[column] = token
    assert pair is not None
    tokens = [pair[1], "w:a", pair[0], "w:a", pair[1]]
    assert feature_indices(tokens).tolist() == old_feature_indices(tokens).tolist()
    assert len(feature_indices(tokens)) == 2


# -- tokens: the body's words and word pairs, built by list comprehensions -------------------------------------------

@settings(max_examples=500, deadline=None)
@given(body=st.lists(st.sampled_from(list("abcdeé É$5%'-_ \n") + ["free", "money", "ﬁ", "𝐅𝐑𝐄𝐄"]), max_size=80).map("".join))
def test_tokens_words_and_pairs_are_as_before(body: str) -> None:
    feats = extract_bytes(b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode())
    words = _WORD_RE.findall(fold(feats.body_text[:MAX_BODY_CHARS]))
    old = [*("w:" + w for w in words), *(f"b:{a} {b}" for a, b in itertools.pairwise(words))]
    got = [t for t in tokens(feats) if t.startswith(("w:", "b:"))]
    assert got == old


# -- phishing: the rules that look for characters outside ASCII skip ASCII text ------------------------------------

_OLD_INVISIBLE = re.compile("[A-Za-z][\u034f\u200b-\u200d\u2060-\u2064\ufeff\ufe00-\ufe0f\U000e0000-\U000e01ef]+[A-Za-z]")
_OLD_GREEK_CYRILLIC, _OLD_LATIN, _OLD_WORD = re.compile(r"[\u0370-\u03ff\u0400-\u04ff]"), re.compile(r"[A-Za-z]"), \
    re.compile(r"\w{3,}")


def old_mixed_word(text: str) -> str | None:
    if not _OLD_GREEK_CYRILLIC.search(text):
        return None
    for w in _OLD_WORD.findall(text):
        if _OLD_LATIN.search(w) and _OLD_GREEK_CYRILLIC.search(w):
            return str(w)
    return None


def old_styled(text: str) -> bool:
    return any("\U0001d400" <= c <= "\U0001d7ff" or "\uff21" <= c <= "\uff5a" or "\u1d00" <= c <= "\u1dbf"
               or "\u2460" <= c <= "\u24ff" or "\U0001f130" <= c <= "\U0001f189" for c in text)


# ASCII letters and the characters each rule looks for (and their neighbours just outside its ranges), and words
# that each rule finds.
SCRIPT_CHARS = list("ab Zz1\n-") + ["\u034f", "\u200b", "\u200d", "\u200e", "\u2060", "\u2064", "\u2065", "\ufeff",
                                     "\ufe00", "\ufe0f", "\U000e0000", "\U000e01ef", "\U000e01f0", "а", "о", "α", "Ͱ",
                                     "ӿ", "Ԁ", "\U0001d400", "\U0001d7ff", "\uff21", "\uff5a", "\uff5b", "\u1d00",
                                     "\u1dbf", "\u2460", "\u24ff", "\U0001f130", "\U0001f189", "\U0001f18a", "é", "\x7f",
                                     "\x80", "a\u034fb", "W\u200be a\u200dr", "x\ufe0fy\U000e0001z", "pаypal", "Αpple"]
script_texts = st.lists(st.sampled_from(SCRIPT_CHARS), max_size=30).map("".join)


@settings(max_examples=600, deadline=None)
@given(head=script_texts, body=script_texts, ascii_only=st.booleans())
def test_the_script_rules_are_as_before(head: str, body: str, ascii_only: bool) -> None:
    if ascii_only:
        head, body = head.encode("ascii", "ignore").decode(), body.encode("ascii", "ignore").decode()
    assert phishing.invisible_splits(head, body) == _OLD_INVISIBLE.findall(f"{head}\n{body[:20000]}")
    assert phishing._mixed_word(body) == old_mixed_word(body)
    assert phishing._styled(head) == old_styled(head)
