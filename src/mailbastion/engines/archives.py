"""Archives opened with limits: members listed and read in bounded chunks, never all at once.

    budget = Budget(limits)                      # one per message: counts members and bytes
    for item in open_archive(data, "zip", where, depth, budget):
        ...                                      # a Member (name, data) or a Finding

Zip (zipfile), tar (tarfile on already-bounded bytes), gzip/bzip2/xz (incremental decompressors
with max_length), 7z (py7zr with a bounded writer) and rar (rarfile, when its tool is installed).
A member over `max_member_size`, a ratio over `max_ratio`, the message over `max_members` or
`max_total_size` yields an ARCHIVE_LIMIT finding and stops reading: the bomb is never inflated.
An encrypted member yields ENCRYPTED; a format we cannot read yields UNSCANNABLE.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mailbastion.engines.base import Finding, FindingKind

__all__ = ["Budget", "LimitReached", "Limits", "Member", "decompress_stream", "open_archive"]

ENGINE = "attachments"
_CHUNK = 64 * 1024
_RATIO_GRACE = 1024 * 1024  # ratios are judged only past the first MiB (small files compress wildly)


class _LimitsLike(Protocol):
    @property
    def max_depth(self) -> int: ...
    @property
    def max_members(self) -> int: ...
    @property
    def max_member_size(self) -> int: ...
    @property
    def max_total_size(self) -> int: ...
    @property
    def max_ratio(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 4
    max_members: int = 1000
    max_member_size: int = 25 * 1024 * 1024
    max_total_size: int = 100 * 1024 * 1024
    max_ratio: float = 100.0


class LimitReached(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Budget:
    """What a whole message may unpack: shared by every archive in it."""

    def __init__(self, limits: _LimitsLike) -> None:
        self.limits = limits
        self.members = 0
        self.total = 0

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise LimitReached(f"more than {self.limits.max_members} archive members")

    def take(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_total_size:
            raise LimitReached(f"more than {self.limits.max_total_size} bytes unpacked")


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    data: bytes


class _Bounded:
    """Collects decompressed bytes and stops at the member, ratio and total limits."""

    def __init__(self, budget: Budget, compressed_size: int) -> None:
        self.budget = budget
        self.compressed = max(compressed_size, 1)
        self.buf = bytearray()

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        lim = self.budget.limits
        if len(self.buf) + len(chunk) > lim.max_member_size:
            raise LimitReached(f"member over {lim.max_member_size} bytes")
        self.budget.take(len(chunk))
        self.buf += chunk
        if len(self.buf) > _RATIO_GRACE and len(self.buf) / self.compressed > lim.max_ratio:
            raise LimitReached(f"compression ratio over {lim.max_ratio:g}")


def decompress_stream(data: bytes, kind: str, budget: Budget) -> bytes:
    """gzip, bzip2 or xz, incrementally with max_length: at most one chunk beyond a limit is made."""
    out = _Bounded(budget, len(data))
    pending = data
    while pending:
        rest = b""
        if kind == "gzip":
            z = zlib.decompressobj(47)
            feed = pending
            while not z.eof:
                chunk = z.decompress(feed, _CHUNK)
                out.add(chunk)
                feed = z.unconsumed_tail
                if not chunk and not feed:
                    break  # truncated stream: keep what was read
            rest = z.unused_data if z.eof else b""
        else:
            d: bz2.BZ2Decompressor | lzma.LZMADecompressor = (
                bz2.BZ2Decompressor() if kind == "bzip2" else lzma.LZMADecompressor()
            )
            feed = pending
            while not d.eof:
                out.add(d.decompress(feed, _CHUNK))
                feed = b""
                if d.needs_input:
                    break  # truncated stream
            rest = d.unused_data if d.eof else b""
        # A second concatenated stream (multi-member gzip) is read too; trailing garbage is ignored.
        pending = rest if rest[:2] in (b"\x1f\x8b", b"BZ", b"\xfd7") else b""
    return bytes(out.buf)


def open_archive(data: bytes, kind: str, where: str, budget: Budget) -> Iterator[Member | Finding]:
    """Yield the members of an archive of `kind`, or Findings about why some could not be read."""
    try:
        if kind == "zip":
            yield from _zip(data, where, budget)
        elif kind == "tar":
            yield from _tar(data, where, budget)
        elif kind in ("gzip", "bzip2", "xz"):
            budget.count_member()
            yield Member(f"({kind})", decompress_stream(data, kind, budget))
        elif kind == "7z":
            yield from _sevenzip(data, where, budget)
        elif kind == "rar":
            yield from _rar(data, where, budget)
        else:
            yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.{kind}", where)
    except LimitReached as exc:
        yield Finding(ENGINE, FindingKind.ARCHIVE_LIMIT, f"archive.limit: {exc.what}", where)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
        yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.{kind}.broken: {type(exc).__name__}", where)


def _zip(data: bytes, where: str, budget: Budget) -> Iterator[Member | Finding]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            budget.count_member()
            lim = budget.limits
            if info.flag_bits & 0x1 or info.compress_type == 99:  # traditional or AES encryption
                yield Finding(ENGINE, FindingKind.ENCRYPTED, "archive.encrypted", f"{where}/{info.filename}")
                continue
            if info.file_size > lim.max_member_size:
                raise LimitReached(f"member declares {info.file_size} bytes")
            if info.file_size > _RATIO_GRACE and info.file_size / max(info.compress_size, 1) > lim.max_ratio:
                raise LimitReached(f"declared compression ratio over {lim.max_ratio:g}")
            out = _Bounded(budget, info.compress_size)
            try:
                with zf.open(info) as fh:
                    while chunk := fh.read(_CHUNK):
                        out.add(chunk)
            except NotImplementedError:
                yield Finding(ENGINE, FindingKind.UNSCANNABLE, "archive.zip.method", f"{where}/{info.filename}")
                continue
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.zip.broken: {exc}"[:80],
                              f"{where}/{info.filename}")
                continue
            yield Member(info.filename, bytes(out.buf))


def _tar(data: bytes, where: str, budget: Budget) -> Iterator[Member | Finding]:
    # Only plain tar reaches here: compressed tars were decompressed (bounded) into `data` first.
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for info in tf:
            if not info.isfile():
                continue
            budget.count_member()
            if info.size > budget.limits.max_member_size:
                raise LimitReached(f"member declares {info.size} bytes")
            fh = tf.extractfile(info)
            if fh is None:
                continue
            out = _Bounded(budget, info.size)  # tar does not compress: no ratio to judge
            while chunk := fh.read(_CHUNK):
                out.add(chunk)
            yield Member(info.name, bytes(out.buf))


def _sevenzip(data: bytes, where: str, budget: Budget) -> Iterator[Member | Finding]:
    import py7zr
    from py7zr.exceptions import PasswordRequired
    from py7zr.io import Py7zIO, WriterFactory

    class _Writer(Py7zIO):
        def __init__(self, name: str) -> None:
            self.name = name
            self.out = _Bounded(budget, max(len(data), 1))

        def write(self, s: bytes | bytearray) -> int:
            self.out.add(bytes(s))
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return len(self.out.buf)

    class _Factory(WriterFactory):
        def __init__(self) -> None:
            self.writers: list[_Writer] = []

        def create(self, filename: str) -> Py7zIO:
            budget.count_member()
            w = _Writer(filename)
            self.writers.append(w)
            return w

    try:
        with py7zr.SevenZipFile(io.BytesIO(data), mode="r") as archive:
            if archive.needs_password():
                yield Finding(ENGINE, FindingKind.ENCRYPTED, "archive.encrypted", where)
                return
            infos = [i for i in archive.list() if not i.is_directory]
            lim = budget.limits
            for i in infos:
                if (i.uncompressed or 0) > lim.max_member_size:
                    raise LimitReached(f"member declares {i.uncompressed} bytes")
            if sum(i.uncompressed or 0 for i in infos) > lim.max_total_size - budget.total:
                raise LimitReached("members declare more than the unpack budget")
            factory = _Factory()
            archive.extract(factory=factory)
    except PasswordRequired:
        yield Finding(ENGINE, FindingKind.ENCRYPTED, "archive.encrypted", where)
        return
    except py7zr.exceptions.Bad7zFile as exc:
        yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.7z.broken: {exc}"[:80], where)
        return
    except py7zr.exceptions.UnsupportedCompressionMethodError:
        yield Finding(ENGINE, FindingKind.UNSCANNABLE, "archive.7z.method", where)
        return
    for w in factory.writers:
        yield Member(w.name, bytes(w.out.buf))


def _rar(data: bytes, where: str, budget: Budget) -> Iterator[Member | Finding]:
    import rarfile

    try:
        rf = rarfile.RarFile(io.BytesIO(data))
    except rarfile.PasswordRequired:
        yield Finding(ENGINE, FindingKind.ENCRYPTED, "archive.encrypted", where)
        return
    except rarfile.Error as exc:
        yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.rar.broken: {type(exc).__name__}", where)
        return
    with rf:
        if not rf.infolist():
            yield Finding(ENGINE, FindingKind.UNSCANNABLE, "archive.rar.unreadable: no members", where)
        for info in rf.infolist():
            if info.is_dir():
                continue
            budget.count_member()
            if info.needs_password():
                yield Finding(ENGINE, FindingKind.ENCRYPTED, "archive.encrypted", f"{where}/{info.filename}")
                continue
            if (info.file_size or 0) > budget.limits.max_member_size:
                raise LimitReached(f"member declares {info.file_size} bytes")
            out = _Bounded(budget, info.compress_size or 1)
            try:
                with rf.open(info) as fh:
                    while chunk := fh.read(_CHUNK):
                        out.add(chunk)
            except (rarfile.Error, OSError) as exc:
                # Decompressing rar needs unrar/unar/7z with RAR support; without it we cannot scan.
                yield Finding(ENGINE, FindingKind.UNSCANNABLE, f"archive.rar.unreadable: {type(exc).__name__}",
                              f"{where}/{info.filename}")
                continue
            yield Member(info.filename, bytes(out.buf))
