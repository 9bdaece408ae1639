"""WebAuthn security keys of portal accounts (migration 0011_webauthn): the optional second factor next to
TOTP (portal/webauthn.py does the ceremonies with py_webauthn; this module only keeps the keys).

    keys = SecurityKeys(directory)
    keys.add("alice@example.org", credential_id, cose_public_key, sign_count, "YubiKey 5", by="portal:alice...")
    key = keys.find("alice@example.org", credential_id)      # SecurityKey | None
    keys.used(key, new_sign_count)                           # after a verified assertion
    keys.remove("alice@example.org", "YubiKey 5", by=..., reason=...)

What is stored is public: the credential id and the COSE public key (RFC 9053) with its signature counter. A
key belongs to the account row (`account_id`) as well as the address: an address given to a new account after
a deletion does not inherit the old owner's keys. Adding and removing keys are audited changes (the record in
the same transaction, as PortalStore does); a use only moves the counter and `last_used_at`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import cast

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailbastion.directory.errors import AccountUnknown, DirectoryError
from mailbastion.directory.models import Account, Base, UtcDateTime
from mailbastion.directory.portal import PortalStore
from mailbastion.directory.resolution import to_address

__all__ = ["KeyNameTaken", "SecurityKey", "SecurityKeys", "WebAuthnKey"]

MAX_KEYS = 10  # per account


class WebAuthnKey(Base):
    __tablename__ = "portal_webauthn_keys"
    __table_args__ = (UniqueConstraint("credential_id", name="uq_portal_webauthn_keys_credential_id"),
                      UniqueConstraint("address", "name", name="uq_portal_webauthn_keys_address_name"),
                      Index("ix_portal_webauthn_keys_address", "address"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(320))
    credential_id: Mapped[str] = mapped_column(String(1400))  # base64url without padding
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


KEYS = cast(Table, WebAuthnKey.__table__)
ACCOUNTS = cast(Table, Account.__table__)


class KeyNameTaken(DirectoryError):
    """The account already has a key of that name (or MAX_KEYS keys)."""


@dataclass(frozen=True, slots=True)
class SecurityKey:
    id: int
    address: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecurityKeys:
    """The security keys of the directory's accounts. Synchronous and thread-safe (asyncio.to_thread)."""

    def __init__(self, directory: object) -> None:
        self.portal = PortalStore(directory)  # type: ignore[arg-type]
        self.engine = self.portal.engine

    def _owned(self, key: str):  # type: ignore[no-untyped-def]
        """Keys of `key` whose account row is the one holding that address now."""
        return (select(KEYS).join(ACCOUNTS, (ACCOUNTS.c.id == KEYS.c.account_id) & (ACCOUNTS.c.address == KEYS.c.address))
                .where(KEYS.c.address == key))

    @staticmethod
    def _key(row: object) -> SecurityKey:
        r = row._mapping  # type: ignore[attr-defined]
        return SecurityKey(r["id"], r["address"], _unb64url(r["credential_id"]), bytes(r["public_key"]),
                           int(r["sign_count"]), r["name"], r["created_at"], r["last_used_at"])

    def list(self, address: str) -> list[SecurityKey]:
        key = to_address(address).normalized
        with self.engine.connect() as conn:
            return [self._key(r) for r in conn.execute(self._owned(key).order_by(KEYS.c.created_at, KEYS.c.id))]

    def find(self, address: str, credential_id: bytes) -> SecurityKey | None:
        key = to_address(address).normalized
        with self.engine.connect() as conn:
            row = conn.execute(self._owned(key).where(KEYS.c.credential_id == b64url(credential_id))).first()
        return None if row is None else self._key(row)

    def add(self, address: str, credential_id: bytes, public_key: bytes, sign_count: int, name: str, *,
            by: str) -> SecurityKey:
        """Register a verified credential. Raises AccountUnknown, KeyNameTaken, ValueError (empty name)."""
        key, name = to_address(address).normalized, " ".join(name.split())[:64]
        if not name:
            raise ValueError("give the security key a name (e.g. the model), to tell your keys apart")
        cred = b64url(credential_id)
        with self.portal._audited("portal.webauthn_added", by=by, subject=key,
                                  details={"name": name, "credential_id": cred[:16]}) as conn:
            account_id = conn.execute(select(ACCOUNTS.c.id).where(ACCOUNTS.c.address == key)).scalar()
            if account_id is None:
                raise AccountUnknown(f"no account {key}")
            mine = [r.name for r in conn.execute(select(KEYS.c.name).where(KEYS.c.address == key))]
            if name in mine:
                raise KeyNameTaken(f"you already have a security key named {name!r}")
            if len(mine) >= MAX_KEYS:
                raise KeyNameTaken(f"at most {MAX_KEYS} security keys per account: remove one first")
            if conn.execute(select(KEYS.c.id).where(KEYS.c.credential_id == cred)).first() is not None:
                raise KeyNameTaken("this security key is registered already")
            now = self.portal.now()
            conn.execute(insert(KEYS).values(account_id=account_id, address=key, credential_id=cred,
                                             public_key=public_key, sign_count=sign_count, name=name, created_at=now))
        found = self.find(key, credential_id)
        assert found is not None
        return found

    def used(self, key: SecurityKey, sign_count: int) -> bool:
        """Record a verified assertion: the counter moves only forward from the value the check saw (two
        assertions racing: one wins). False when the key is gone or the counter moved meanwhile."""
        with self.engine.begin() as conn:
            done = conn.execute(update(KEYS).where(KEYS.c.id == key.id, KEYS.c.sign_count == key.sign_count)
                                .values(sign_count=sign_count, last_used_at=self.portal.now()))
            return bool(done.rowcount)

    def remove(self, address: str, name: str | None, *, by: str, reason: str = "") -> int:
        """Remove the key `name` (None: every key of the account); the number removed. Audited."""
        key = to_address(address).normalized
        where = [KEYS.c.address == key] + ([KEYS.c.name == name] if name is not None else [])
        with self.portal._audited("portal.webauthn_removed", by=by, subject=key, reason=reason,
                                  details={"name": name if name is not None else "*"}) as conn:
            gone = conn.execute(delete(KEYS).where(*where)).rowcount or 0
            if name is not None and not gone:
                raise DirectoryError(f"no security key named {name!r}")
        return int(gone)
