"""Markdown that a page may show as it is: the acceptable use policy and the training modules.

    html = to_html(text)        # markupsafe.Markup: CommonMark and tables; raw HTML in the text is escaped

One renderer for both (they were two, with different rules): markdown-it-py (the CommonMark reference port)
with raw HTML off, so a `<script>` or `<img onerror>` written in the text shows as text; images off (the
portal's CSP would block an outside image anyway, and neither a policy nor a module needs one); links only
to http(s), mailto, a fragment or a path of the portal (markdown-it's own validation already drops
`javascript:`, `vbscript:`, `file:` and `data:`). The pages' CSP allows no script at all: the second fence.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["to_html"]

_LINKS = ("https://", "http://", "mailto:", "#", "/")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table") \
        .disable("image")
    default = md.validateLink
    md.validateLink = lambda url: default(url) and url.lower().startswith(_LINKS)  # type: ignore[method-assign]
    return md


@lru_cache(maxsize=16)
def to_html(text: str) -> Markup:
    return Markup(_parser().render(text))
