"""Directory errors, named after the state of the thing. All are permanent: retrying will not help.

    PermanentFailure (core/errors.py)
    └─ DirectoryError
        ├─ DomainUnknown      not one of our domains
        ├─ DomainExists
        ├─ AccountUnknown     no such account (→ 550 5.1.1)
        ├─ AccountExists      an account or alias already has that address
        │   └─ AddressReserved  a deleted account's address, before its reservation ends
        ├─ AccountDisabled    the account exists but is not active (pending, suspended, disabled, deleted)
        ├─ AliasUnknown
        ├─ AliasExists
        └─ PasswordTooWeak    an administrator-chosen password below the minimum
"""

from __future__ import annotations

from mailbastion.core import replies
from mailbastion.core.errors import PermanentFailure


class DirectoryError(PermanentFailure):
    reply = replies.TRANSACTION_FAILED


class DomainUnknown(DirectoryError):
    reply = replies.UNKNOWN_USER


class DomainExists(DirectoryError):
    pass


class AccountUnknown(DirectoryError):
    reply = replies.UNKNOWN_USER


class AccountExists(DirectoryError):
    pass


class AddressReserved(AccountExists):
    pass


class AccountDisabled(DirectoryError):
    reply = replies.UNKNOWN_USER


class AliasUnknown(DirectoryError):
    pass


class AliasExists(DirectoryError):
    pass


class PasswordTooWeak(DirectoryError):
    pass


__all__ = ["AccountDisabled", "AccountExists", "AccountUnknown", "AddressReserved", "AliasExists", "AliasUnknown", "DirectoryError",
           "DomainExists", "DomainUnknown", "PasswordTooWeak"]
