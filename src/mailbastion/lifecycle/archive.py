"""A leaver's mailbox exported for keeping: one Maildir tarball and its SHA-256 checksum file.

    archive = export_maildir(maildir, archive_dir, "bob@example.org", now)
    archive.path, archive.checksum_path, archive.sha256, archive.messages
    verify_archive(archive.path)            # → the digest; raises ArchiveCorrupt when it does not match

The tarball (`<address>-<UTC time>.tar.gz`) holds the Maildir below a folder named after the address, with
every file and folder as they were (Maildir++ folders included). The checksum file (`<tarball>.sha256`) is
in the format of coreutils `sha256sum`, so `sha256sum -c` checks it too. Both are written to a temporary
name, fsynced and renamed, mode 0600, in a 0700 folder: an archive is either complete or absent. Callers
remove the Maildir only after `verify_archive` passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024


class ArchiveCorrupt(Exception):
    """The tarball does not match its checksum file, or does not read as a tar archive."""


@dataclass(frozen=True, slots=True)
class Archive:
    path: Path
    checksum_path: Path
    sha256: str
    size: int
    messages: int  # message files (in cur/ and new/ of every folder)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _count_messages(maildir: Path) -> int:
    if not maildir.is_dir():
        return 0
    return sum(1 for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(target: Path, write: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)  # type: ignore[operator]
            fh.flush()
            os.fchmod(fh.fileno(), 0o600)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def export_maildir(maildir: Path, archive_dir: Path, address: str, when: dt.datetime) -> Archive:
    """Write the tarball of `maildir` (an empty one when the account never received mail) and its checksum
    file into `archive_dir` (made 0700 when missing). Raises OSError."""
    archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{address}-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.tar.gz"
    path = archive_dir / name

    def tar(fh: object) -> None:
        with tarfile.open(fileobj=fh, mode="w:gz") as t:  # type: ignore[call-overload]
            if maildir.is_dir():
                t.add(maildir, arcname=address, recursive=True)

    _write_atomic(path, tar)
    digest = sha256_of(path)
    checksum = path.with_name(name + ".sha256")
    _write_atomic(checksum, lambda fh: fh.write(f"{digest}  {name}\n".encode()))
    _fsync_dir(archive_dir)
    return Archive(path, checksum, digest, path.stat().st_size, _count_messages(maildir))


def verify_archive(path: Path) -> str:
    """Check the tarball at `path` against `<path>.sha256` and read it through as a tar archive; return the
    digest. Raises ArchiveCorrupt (also when the checksum file is missing or malformed)."""
    checksum = path.with_name(path.name + ".sha256")
    try:
        expected, _, named = checksum.read_text().strip().partition("  ")
    except OSError as exc:
        raise ArchiveCorrupt(f"{checksum}: cannot be read ({exc})") from None
    if len(expected) != 64 or named != path.name:
        raise ArchiveCorrupt(f"{checksum}: not a sha256sum line for {path.name}")
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ArchiveCorrupt(f"{path}: cannot be read ({exc})") from None
    if actual != expected.lower():
        raise ArchiveCorrupt(f"{path}: SHA-256 {actual} does not match {expected} in {checksum.name}")
    try:
        with tarfile.open(path, mode="r:gz") as t:
            for member in t:
                if member.isfile():
                    with t.extractfile(member) as fh:  # type: ignore[union-attr]
                        while fh.read(CHUNK):
                            pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveCorrupt(f"{path}: not a readable tar archive ({exc})") from None
    return actual


def remove_archive(path: Path) -> None:
    """Delete the tarball and its checksum file (missing ones are fine)."""
    for p in (path, path.with_name(path.name + ".sha256")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


__all__ = ["Archive", "ArchiveCorrupt", "export_maildir", "remove_archive", "sha256_of", "verify_archive"]
