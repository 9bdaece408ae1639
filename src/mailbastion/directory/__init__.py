"""The directory: domains, accounts and their states, aliases, argon2id credentials, and the address-only
recipient map that the DMZ gateway reads.

Names load lazily (PEP 562): the gateway imports `mailbastion.directory.recipient_map` alone and so never
loads the database, password or store code (design §4: nothing the gateway imports reaches credentials).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.directory.app_passwords import (
        AppPasswordExists,
        AppPasswordInfo,
        AppPasswordUnknown,
        NewAppPassword,
    )
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
    from mailbastion.directory.login import LoginGuard, LoginOutcome, LoginResult
    from mailbastion.directory.models import AccountState
    from mailbastion.directory.recipient_map import RecipientMap
    from mailbastion.directory.store import AccountInfo, AuditAction, Directory
    from mailbastion.directory.throttle import Lockout, LoginThrottle

_WHERE = {
    "AppPasswordExists": "app_passwords", "AppPasswordInfo": "app_passwords", "AppPasswordUnknown": "app_passwords",
    "NewAppPassword": "app_passwords",
    "LoginGuard": "login", "LoginOutcome": "login", "LoginResult": "login",
    "Lockout": "throttle", "LoginThrottle": "throttle",
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
    "AliasUnknown", "AppPasswordExists", "AppPasswordInfo", "AppPasswordUnknown", "AuditAction", "Directory",
    "DirectoryCache", "DirectoryError", "DomainExists", "DomainUnknown", "Lockout", "LoginGuard", "LoginOutcome",
    "LoginResult", "LoginThrottle", "NewAppPassword", "PasswordTooWeak", "RecipientMap", "make_engine", "migrate",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
