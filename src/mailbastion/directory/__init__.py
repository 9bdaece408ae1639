"""The directory: domains, accounts and their states, aliases, argon2id credentials, and the address-only
recipient map that the DMZ gateway reads.

Names load lazily (PEP 562): the gateway imports `mailbastion.directory.recipient_map` alone and so never
loads the database, password or store code (design §4: nothing the gateway imports reaches credentials).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.directory.cache import DirectoryCache
    from mailbastion.directory.database import make_engine, migrate
    from mailbastion.directory.errors import (
        AccountDisabled,
        AccountExists,
        AccountUnknown,
        AliasExists,
        AliasUnknown,
        DirectoryError,
        DomainExists,
        DomainUnknown,
        PasswordTooWeak,
    )
    from mailbastion.directory.models import AccountState
    from mailbastion.directory.recipient_map import RecipientMap
    from mailbastion.directory.store import AccountInfo, AuditAction, Directory

_WHERE = {
    "DirectoryCache": "cache",
    "make_engine": "database", "migrate": "database",
    "AccountDisabled": "errors", "AccountExists": "errors", "AccountUnknown": "errors", "AliasExists": "errors",
    "AliasUnknown": "errors", "DirectoryError": "errors", "DomainExists": "errors", "DomainUnknown": "errors",
    "PasswordTooWeak": "errors",
    "AccountState": "models",
    "RecipientMap": "recipient_map",
    "AccountInfo": "store", "AuditAction": "store", "Directory": "store",
}

__all__ = [
    "AccountDisabled", "AccountExists", "AccountInfo", "AccountState", "AccountUnknown", "AliasExists",
    "AliasUnknown", "AuditAction", "Directory", "DirectoryCache", "DirectoryError", "DomainExists", "DomainUnknown",
    "PasswordTooWeak", "RecipientMap", "make_engine", "migrate",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
