"""Faster equivalents in the spam stage, each held equal to the code it replaced (kept here as the reference) on
thousands of generated inputs."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.spam.phishing import without_urls

# -- phishing.without_urls: the words that hold a URL taken out ---------------------------------------------------

_OLD_URL_TEXT_RE = re.compile(r"\S*(?:https?://|www\.)\S*")  # before: tried from every position of every word


def old_without_urls(text: str) -> str:
    return _OLD_URL_TEXT_RE.sub("", text)


# Pieces of URLs and near misses, the characters around them, and every kind of space str.split and \s know.
URL_BITS = ["http://", "https://", "http:/", "https:", "htt", "www.", "www", "WWW.", "://", ":", "/", "s", "w", ".",
            "x", "é", "a.b", " ", "  ", "\n", "\t", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85", "\xa0", "\u2003",
            "\u3000", "\u200b", "\ufeff"]
url_texts = st.lists(st.one_of(st.sampled_from(URL_BITS), st.text(max_size=3)), max_size=40).map("".join)


@settings(max_examples=3000, deadline=None)
@given(text=url_texts)
def test_without_urls_is_the_old_substitution(text: str) -> None:
    assert without_urls(text) == old_without_urls(text)


def test_without_urls_examples() -> None:
    text = "see https://a.example/x and www.b.example, or mailto:x@y;http://c.example\tnow"
    assert without_urls(text) == old_without_urls(text) == "see  and  or \tnow"
    assert without_urls("no link here") == "no link here"
    long_word = "x" * 5000 + " http://a.example"  # a long word without a URL is read once, not 5,000 times
    assert without_urls(long_word) == "x" * 5000 + " "
