"""Archives and decompression under limits: bombs stopped without inflating them."""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import tracemalloc

import py7zr
import pytest

from mailbastion.engines.archives import Budget, Limits, Member, decompress_stream, open_archive
from mailbastion.engines.base import Finding, FindingKind
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR


def items(data: bytes, kind: str, limits: Limits | None = None) -> list[Member | Finding]:
    return list(open_archive(data, kind, "a", Budget(limits or Limits())))


def test_zip_members_read() -> None:
    out = items(av._zip([("a.txt", b"hello"), ("dir/b.com", EICAR)]), "zip")
    assert [m.name for m in out if isinstance(m, Member)] == ["a.txt", "dir/b.com"]


def test_encrypted_zip_member() -> None:
    out = items(av.encrypted_zip(), "zip")
    assert [f.kind for f in out if isinstance(f, Finding)] == [FindingKind.ENCRYPTED]


@pytest.mark.parametrize("maker,kind", [(av.zip_bomb, "zip"), (av.gzip_bomb, "gzip")])
def test_bombs_stop_at_the_member_limit_with_bounded_memory(maker: object, kind: str) -> None:
    bomb = maker(200 * 1024 * 1024)  # type: ignore[operator]
    tracemalloc.start()
    try:
        out = items(bomb, kind, Limits(max_member_size=8 * 1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [f.kind for f in out if isinstance(f, Finding)] == [FindingKind.ARCHIVE_LIMIT]
    assert peak < 40 * 1024 * 1024


def test_ratio_limit() -> None:
    data = av._zip([("z", b"\0" * (4 * 1024 * 1024))])
    out = items(data, "zip", Limits(max_ratio=10))
    assert any(isinstance(f, Finding) and "ratio" in f.name for f in out)


def test_member_count_limit() -> None:
    data = av._zip([(f"f{i}", b"x") for i in range(50)])
    out = items(data, "zip", Limits(max_members=10))
    assert any(isinstance(f, Finding) and f.kind is FindingKind.ARCHIVE_LIMIT for f in out)


def test_total_size_limit_across_members() -> None:
    data = av._zip([(f"f{i}", b"y" * 600_000) for i in range(10)])
    out = items(data, "zip", Limits(max_total_size=2_000_000))
    assert any(isinstance(f, Finding) and f.kind is FindingKind.ARCHIVE_LIMIT for f in out)


def test_tar_and_compressed_streams() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("eicar.com")
        info.size = len(EICAR)
        tf.addfile(info, io.BytesIO(EICAR))
    out = items(buf.getvalue(), "tar")
    assert isinstance(out[0], Member) and out[0].data == EICAR
    budget = Budget(Limits())
    assert decompress_stream(bz2.compress(EICAR), "bzip2", budget) == EICAR
    assert decompress_stream(lzma.compress(EICAR), "xz", budget) == EICAR


def test_truncated_gzip_keeps_what_was_read() -> None:
    import gzip

    data = gzip.compress(EICAR * 10)[:-12]
    assert decompress_stream(data, "gzip", Budget(Limits())).startswith(EICAR)


def test_sevenzip_plain_and_encrypted() -> None:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(EICAR, "eicar.com")
    out = items(buf.getvalue(), "7z")
    assert [m.data for m in out if isinstance(m, Member)] == [EICAR]
    enc = io.BytesIO()
    with py7zr.SevenZipFile(enc, "w", password="secret") as z:
        z.writestr(EICAR, "eicar.com")
    out = items(enc.getvalue(), "7z")
    assert [f.kind for f in out if isinstance(f, Finding)] == [FindingKind.ENCRYPTED]


def test_broken_zip_is_unscannable() -> None:
    out = items(b"PK\x03\x04" + b"\0" * 40, "zip")
    assert [f.kind for f in out if isinstance(f, Finding)] == [FindingKind.UNSCANNABLE]


def test_unknown_archive_format_is_unscannable() -> None:
    out = items(b"MSCF\0\0\0\0", "cab")
    assert [f.kind for f in out if isinstance(f, Finding)] == [FindingKind.UNSCANNABLE]


def test_rar_without_a_tool_or_broken_is_not_clean() -> None:
    out = items(b"Rar!\x1a\x07\x00" + b"\0" * 30, "rar")
    assert out and all(isinstance(f, Finding) for f in out)
