"""The key store: users' S/MIME certificates and OpenPGP keys (with their private keys, sealed), and the
public keys of outsiders we collected or discovered. Files under `encryption.key_dir` (0700/0600).

    <key_dir>/store/<domain>/<local>/<kind>-<fingerprint>.json     one record per key
    <key_dir>/smime-ca.crt, smime-ca.key.sealed                    the deployment's S/MIME CA (smime_ca.py)

A record: address, kind ("smime" | "openpgp"), fingerprint, public material (PEM certificate, or an
armored OpenPGP certificate), the private key sealed with the deployment key (or none: outsiders'
keys, imported public certificates), where it came from (generated | imported | collected | wkd | ldap),
when it expires and whether it was revoked. Revoked and expired records are kept (old mail encrypted
to them still needs their owner's private key, which `keys export --private` can give back).

    store = KeyStore(key_dir, deployment_key_path)
    store.active(address)                         # usable records, newest first
    store.encryption_key(address, prefer="smime") # PublicKey | None: what protect_outbound and the MDA use
    store.private_key(record)                     # opens the sealed private key (internal role only)

Thread-safe for readers; writers replace whole files atomically (private_files.write_private).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mailbastion.crypto.sealing import DeploymentKey
from mailbastion.private_files import private_dir, write_private

__all__ = ["KeyKind", "KeyRecord", "KeyStore", "PublicKey", "address_dir_name"]

KeyKind = Literal["smime", "openpgp"]
KINDS: tuple[KeyKind, ...] = ("smime", "openpgp")
SOURCES = ("generated", "imported", "collected", "wkd", "ldap")


def _escape(part: str) -> str:
    out = []
    for i, ch in enumerate(part.lower()):
        if (ch.isascii() and (ch.isalnum() or ch in "._=+-")) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out) or "%00"


def address_dir_name(address: str) -> tuple[str, str]:
    """(domain folder, local folder) for an address: lower case, one safe path component each."""
    local, _, domain = address.lower().rpartition("@")
    return _escape(domain), _escape(local)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    address: str
    kind: KeyKind
    fingerprint: str
    public: bytes  # PEM certificate(s) (the leaf first) or an armored OpenPGP certificate
    source: str
    created: float
    expires: float | None = None
    sealed_private: bytes | None = None  # sealed with the deployment key (sealing.py)
    revoked: float | None = None
    revoke_reason: str = ""

    @property
    def has_private(self) -> bool:
        return self.sealed_private is not None

    def is_active(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.revoked is None and (self.expires is None or self.expires > now)

    def state(self, now: float | None = None) -> str:
        if self.revoked is not None:
            return "revoked"
        return "active" if self.is_active(now) else "expired"

    def context(self) -> bytes:
        """The associated data of the sealed private key: it opens only in this record."""
        return f"{self.address}|{self.kind}|{self.fingerprint}".encode()

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["public"] = self.public.decode("ascii")
        data["sealed_private"] = base64.b64encode(self.sealed_private).decode() if self.sealed_private else None
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> KeyRecord:
        data = json.loads(raw)
        data["public"] = data["public"].encode("ascii")
        sealed = data.get("sealed_private")
        data["sealed_private"] = base64.b64decode(sealed) if sealed else None
        return cls(**data)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """What encryption needs of a recipient: the kind and the public material (no private key)."""

    address: str
    kind: KeyKind
    fingerprint: str
    public: bytes
    source: str


class KeyStore:
    def __init__(self, key_dir: Path, deployment_key_path: Path) -> None:
        self.key_dir = key_dir
        self.root = key_dir / "store"
        self.deployment_key_path = deployment_key_path
        self._deployment_key: DeploymentKey | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> KeyStore:
        e = settings.encryption
        return cls(settings.path(e.key_dir), settings.path(e.deployment_key))

    # -- the deployment key (only where private keys are made or opened) ------------------------------

    @property
    def deployment_key(self) -> DeploymentKey:
        if self._deployment_key is None:
            self._deployment_key = DeploymentKey.load_or_create(self.deployment_key_path)
        return self._deployment_key

    def seal(self, record: KeyRecord, private: bytes) -> KeyRecord:
        return replace(record, sealed_private=self.deployment_key.seal(private, context=record.context()))

    def private_key(self, record: KeyRecord) -> bytes:
        """The record's private key (PKCS #8 DER, or an armored OpenPGP secret key). Raises LookupError when
        it has none, SealBroken when the deployment key is not the one that sealed it."""
        if record.sealed_private is None:
            raise LookupError(f"{record.address}: no private key for {record.kind} {record.fingerprint[:16]}")
        return self.deployment_key.open(record.sealed_private, context=record.context())

    # -- records ------------------------------------------------------------------------------------

    def _folder(self, address: str) -> Path:
        domain, local = address_dir_name(address)
        return self.root / domain / local

    def _path(self, record: KeyRecord) -> Path:
        return self._folder(record.address) / f"{record.kind}-{record.fingerprint[:64]}.json"

    def put(self, record: KeyRecord) -> KeyRecord:
        if record.kind not in KINDS or record.source not in SOURCES:
            raise ValueError(f"bad key record: kind {record.kind!r}, source {record.source!r}")
        private_dir(self._folder(record.address))
        write_private(self._path(record), record.to_json())
        return record

    def records(self, address: str) -> list[KeyRecord]:
        """Every record of `address` (any state), newest first."""
        folder = self._folder(address.lower())
        out = []
        try:
            entries = sorted(folder.iterdir())
        except FileNotFoundError:
            return []
        for path in entries:
            if path.suffix == ".json" and not path.name.startswith("."):
                try:
                    out.append(KeyRecord.from_json(path.read_bytes()))
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a damaged record is no key; `keys list` shows what remains
        return sorted(out, key=lambda r: r.created, reverse=True)

    def find(self, address: str, kind: str, fingerprint: str) -> KeyRecord | None:
        return next((r for r in self.records(address) if r.kind == kind and r.fingerprint == fingerprint), None)

    def active(self, address: str, kind: str | None = None, *, now: float | None = None) -> list[KeyRecord]:
        return [r for r in self.records(address) if r.is_active(now) and (kind is None or r.kind == kind)]

    def addresses(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        from urllib.parse import unquote

        for domain in sorted(self.root.iterdir()):
            if domain.is_dir():
                for local in sorted(domain.iterdir()):
                    if local.is_dir() and any(local.glob("*.json")):
                        yield f"{unquote(local.name)}@{unquote(domain.name)}"

    def revoke(self, address: str, *, kind: str | None = None, reason: str = "",
               now: float | None = None) -> list[KeyRecord]:
        """Mark every active record of `address` (of `kind`) revoked; returns them."""
        stamp = time.time() if now is None else now
        done = []
        for record in self.active(address, kind, now=stamp):
            done.append(self.put(replace(record, revoked=stamp, revoke_reason=reason)))
        return done

    def encryption_key(self, address: str, *, prefer: str = "smime", now: float | None = None) -> PublicKey | None:
        """The key to encrypt to `address` with: the newest active one of the preferred kind, else of the
        other kind, else None."""
        active = self.active(address, now=now)
        for kind in (prefer, *(k for k in KINDS if k != prefer)):
            for record in active:
                if record.kind == kind:
                    return PublicKey(record.address, record.kind, record.fingerprint, record.public, record.source)
        return None
