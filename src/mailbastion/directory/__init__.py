"""The directory: domains, accounts and their states, aliases, argon2id credentials, and the address-only
recipient map that the DMZ gateway reads (`RecipientMap`, which needs nothing else from here)."""

from __future__ import annotations

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

__all__ = [
    "AccountDisabled", "AccountExists", "AccountInfo", "AccountState", "AccountUnknown", "AliasExists",
    "AliasUnknown", "AuditAction", "Directory", "DirectoryError", "DomainExists", "DomainUnknown",
    "PasswordTooWeak", "RecipientMap", "make_engine", "migrate",
]
