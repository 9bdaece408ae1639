"""The acceptable use policy template shipped with mailbastion (`mailbastion aup template` prints it): a
site copies it, fills in the bracketed parts, and publishes it (`mailbastion aup publish FILE --version V`)."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["template_text"]


def template_text() -> str:
    return files("mailbastion.aup").joinpath("data/aup-template.md").read_text(encoding="utf-8")
