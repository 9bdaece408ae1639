"""Registrable domains (public suffix list) for comparing and looking up hosts. Loaded once, lazily."""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList

_PSL: PublicSuffixList | None = None


def _psl() -> PublicSuffixList:
    global _PSL
    if _PSL is None:
        _PSL = PublicSuffixList()
    return _PSL


@lru_cache(maxsize=20000)
def registrable_domain(host: str) -> str:
    """`www.mail.example.co.uk` -> `example.co.uk`; the host itself when it has no known suffix."""
    host = host.lower().strip(".")
    return _psl().privatesuffix(host) or host


@lru_cache(maxsize=20000)
def has_known_suffix(host: str) -> bool:
    """True when the host ends in a real public suffix (`.com`, `.co.uk`), not `.cgi` or `.story`."""
    host = host.lower().strip(".")
    return "." in host and _psl().publicsuffix(host, accept_unknown=False) is not None
