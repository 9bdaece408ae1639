"""The policy's Markdown as HTML that is safe to put in a portal page as it is.

    html = to_html(text)        # markupsafe.Markup: CommonMark and tables; raw HTML in the text is escaped

markdown-it-py (the CommonMark reference port) with raw HTML off, so a `<script>` or `<img onerror>` written
in the policy shows as text; its link validation drops `javascript:`, `vbscript:`, `file:` and `data:` URLs;
images are off (the portal's CSP would block an outside image anyway, and a policy needs none). The page's
CSP allows no script at all, which is the second fence.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["to_html"]


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table") \
        .disable("image")


@lru_cache(maxsize=16)
def to_html(text: str) -> Markup:
    return Markup(_parser().render(text))
