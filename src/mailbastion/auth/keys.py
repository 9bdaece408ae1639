"""Our DKIM private keys: made here, kept outside the configuration file, readable by us alone.

    <dkim_keys_dir>/                    0700
      example.org/                      0700
        mb20261128r.key                 0600  RSA (PKCS#1 PEM) or ed25519 (base64 seed, as dkimpy reads it)
        state.json                      0600  each selector's state and dates

Rotation uses two selectors per algorithm (M3AAWG DKIM key rotation): a new key starts `pending`
while its record is published; once `mailbastion dns check` sees the record live it becomes `active`,
and the previous one `retired` with a removal date (its record stays up that long, so mail signed
with it and still in transit verifies). Every change is written atomically (tmp, fsync, rename).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailbastion.core.errors import ConfigError

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    bits: int
    state: str  # "pending" | "active" | "retired"
    created: str  # ISO 8601 UTC
    public: str  # base64 of the public key as published in p= (RFC 6376 §3.6.1, RFC 8463 §4.2)
    activated: str | None = None
    retired: str | None = None
    remove_after: str | None = None  # when the retired record may be removed from DNS

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        k = "ed25519" if self.algorithm.startswith("ed25519") else "rsa"
        return f"v=DKIM1; k={k}; p={self.public}"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class KeyStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, domain: str, create: bool = False) -> Path:
        domain = domain.lower().rstrip(".")
        if not domain or "/" in domain or domain.startswith("."):
            raise ConfigError(f"not a domain: {domain!r}")
        d = self.root / domain
        if create:
            for p in (self.root, d):
                p.mkdir(mode=0o700, exist_ok=True)
                os.chmod(p, 0o700)
        return d

    def keys(self, domain: str) -> list[KeyInfo]:
        f = self._dir(domain) / "state.json"
        if not f.exists():
            return []
        data = json.loads(f.read_text(encoding="utf-8"))
        return [KeyInfo(**k) for k in data.get("keys", [])]

    def domains(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())

    def _save(self, domain: str, keys: list[KeyInfo]) -> None:
        body = json.dumps({"keys": [asdict(k) for k in keys]}, indent=2).encode()
        _write_private(self._dir(domain, create=True) / "state.json", body)

    def active(self, domain: str) -> list[KeyInfo]:
        return [k for k in self.keys(domain) if k.state == "active"]

    def pending(self, domain: str) -> list[KeyInfo]:
        return [k for k in self.keys(domain) if k.state == "pending"]

    def published(self, domain: str) -> list[KeyInfo]:
        """Keys whose records must be in DNS now: pending, active, and retired ones not yet due for removal."""
        now = _now().isoformat()
        return [k for k in self.keys(domain) if k.state != "retired" or (k.remove_after or "") > now]

    def generate(self, domain: str, algorithm: str = "rsa-sha256", bits: int = 2048,
                 now: datetime | None = None) -> KeyInfo:
        """Make a new `pending` key. Its selector names its day and algorithm: mb20261128r / mb20261128e."""
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {algorithm!r} (allowed: {', '.join(ALGORITHMS)})")
        if algorithm == "rsa-sha256" and bits < 2048:
            raise ConfigError("RSA keys under 2048 bits are refused (RFC 8301 §3.2)")
        now = now or _now()
        folder = self._dir(domain, create=True)
        existing = {k.selector for k in self.keys(domain)}
        base = f"mb{now:%Y%m%d}{'e' if algorithm.startswith('ed25519') else 'r'}"
        selector, n = base, 1
        while selector in existing or (folder / f"{selector}.key").exists():
            n += 1
            selector = f"{base}{n}"
        if algorithm == "rsa-sha256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            public = key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            ed = ed25519.Ed25519PrivateKey.generate()
            seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            private = base64.b64encode(seed) + b"\n"
            public = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            bits = 256
        _write_private(folder / f"{selector}.key", private)
        info = KeyInfo(domain.lower(), selector, algorithm, bits, "pending", now.isoformat(),
                       base64.b64encode(public).decode("ascii"))
        self._save(domain, [*self.keys(domain), info])
        return info

    def activate(self, domain: str, selector: str, *, retire_after_days: int = 7,
                 now: datetime | None = None) -> list[KeyInfo]:
        """Make `selector` the active key of its algorithm; the previous one is retired. Returns the retired."""
        now = now or _now()
        keys = self.keys(domain)
        target = next((k for k in keys if k.selector == selector), None)
        if target is None:
            raise ConfigError(f"no key {selector!r} for {domain}")
        retired, out = [], []
        for k in keys:
            if k.selector == selector:
                k = replace(k, state="active", activated=now.isoformat())
            elif k.state == "active" and k.algorithm == target.algorithm:
                k = replace(k, state="retired", retired=now.isoformat(),
                            remove_after=(now + timedelta(days=retire_after_days)).isoformat())
                retired.append(k)
            out.append(k)
        self._save(domain, out)
        return retired

    def hold_only(self, keys: dict[str, tuple[str, bytes]]) -> bool:
        """Make this store hold exactly these active RSA keys, {domain: (selector, PEM)}, and nothing else: the
        split gateway's copy of the sealing keys the internal host pushes (outbound/sealing_keys.py). Each
        domain's files are replaced atomically (key file first, then state.json); domains no longer named
        are removed. Returns whether anything changed. Raises ValueError for a PEM that is no RSA key."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        changed = False
        for domain, (selector, pem) in keys.items():
            try:
                if [(k.selector, k.state) for k in self.keys(domain)] == [(selector, "active")] \
                        and self.private_key(domain, selector) == pem:
                    continue
            except OSError:
                pass
            key = load_pem_private_key(pem, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"the sealing key of {domain} is not an RSA key")
            public = key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
            folder = self._dir(domain, create=True)
            _write_private(folder / f"{selector}.key", pem)
            now = _now().isoformat()
            self._save(domain, [KeyInfo(domain.lower(), selector, "rsa-sha256", key.key_size, "active", now,
                                        base64.b64encode(public).decode("ascii"), activated=now)])
            for old in folder.glob("*.key"):
                if old.name != f"{selector}.key":
                    old.unlink()
            changed = True
        wanted = {d.lower().rstrip(".") for d in keys}
        for domain in self.domains():
            if domain not in wanted:
                folder = self._dir(domain)
                (folder / "state.json").unlink()
                for old in folder.glob("*"):
                    old.unlink()
                folder.rmdir()
                changed = True
        return changed

    def private_key(self, domain: str, selector: str) -> bytes:
        return (self._dir(domain) / f"{selector}.key").read_bytes()

    def permission_problems(self) -> list[str]:
        """Key folders or files that others than us may read: the gateway refuses to start with them."""
        problems: list[str] = []
        if not self.root.exists():
            return problems
        for p in [self.root, *self.root.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                problems.append(f"{p}: mode {mode:o} lets others read DKIM keys (want {'700' if p.is_dir() else '600'})")
        return problems


__all__ = ["ALGORITHMS", "KeyInfo", "KeyStore"]
