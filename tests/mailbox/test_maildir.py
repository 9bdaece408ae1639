"""Maildir delivery: layout, atomic files, Junk as Maildir++ folder, quota and its counter file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.verdict import Folder
from mailbastion.mailbox.maildir import MaildirStore, QuotaExceeded, safe_local
from mailbastion.mailbox.quota import SIZE_FILE, read_usage

ALICE = parse_address("alice@example.org")


def test_delivery_layout_and_content(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path / "mail")
    path = store.deliver(ALICE, b"Subject: hi\n\nbody\n")
    box = tmp_path / "mail" / "example.org" / "alice"
    assert path.parent == box / "new" and path.read_bytes() == b"Subject: hi\n\nbody\n"
    assert path.name.endswith(",S=18")
    for sub in ("cur", "new", "tmp"):
        assert (box / sub).is_dir() and (box / ".Junk" / sub).is_dir()
    assert (box / ".Junk" / "maildirfolder").exists()
    assert not list((box / "tmp").iterdir())
    assert (path.stat().st_mode & 0o777) == 0o600


def test_junk_goes_to_junk_folder(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    path = store.deliver(ALICE, b"x\n", folder=Folder.JUNK)
    assert path.parent == tmp_path / "example.org" / "alice" / ".Junk" / "new"


def test_unique_names_under_concurrency(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    threads = [threading.Thread(target=lambda: [store.deliver(ALICE, b"m\n") for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list((tmp_path / "example.org" / "alice" / "new").iterdir())) == 80
    assert store.usage(ALICE) == 160


def test_quota(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, default_quota_bytes=100)
    store.deliver(ALICE, b"a" * 60)
    with pytest.raises(QuotaExceeded) as info:
        store.deliver(ALICE, b"b" * 60)
    assert info.value.reply.code == 452 and info.value.reply.status == "4.2.2"
    store.deliver(ALICE, b"c" * 40)  # exactly at the limit
    assert store.usage(ALICE) == 100
    store.deliver(ALICE, b"d" * 500, quota_bytes=0)  # per-account 0 = unlimited
    assert len(list((tmp_path / "example.org" / "alice" / "new").iterdir())) == 3


def test_counter_is_recomputed_when_missing(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, default_quota_bytes=1000)
    store.deliver(ALICE, b"a" * 100)
    store.deliver(ALICE, b"b" * 50, folder=Folder.JUNK)
    box = tmp_path / "example.org" / "alice"
    assert read_usage(box) == (150, 2)
    (box / SIZE_FILE).unlink()
    assert store.usage(ALICE) == 150
    assert (box / SIZE_FILE).read_text().splitlines() == ["1000S", "150 2"]
    for f in (box / "new").iterdir():
        f.unlink()  # removed behind our back (by a mail client)
    assert store.recalculate(ALICE) == 50


def test_safe_local_parts() -> None:
    assert safe_local("Alice.Smith") == "alice.smith"
    assert safe_local("../etc") == "%2E.%2Fetc"
    assert safe_local(".hidden") == "%2Ehidden"
    assert "/" not in safe_local("a/b") and safe_local("a/b") != safe_local("a_b")


# -- the delivery path: mailboxes created once per process, unnamed files, nothing left behind ----------------------


def _box(root: Path) -> Path:
    return root / "example.org" / "alice"


def _files(box: Path) -> dict[str, list[str]]:
    return {sub: sorted(p.name for p in (box / sub).iterdir()) if (box / sub).is_dir() else []
            for sub in ("new", "tmp", ".Junk/new", ".Junk/tmp")}


@pytest.fixture(params=["tmpfile", "through-tmp"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MaildirStore:
    """A store writing as O_TMPFILE + linkat where the file system allows it, and one forced through tmp/."""
    s = MaildirStore(tmp_path / "mail", default_quota_bytes=10_000)
    if request.param == "through-tmp":
        s._tmpfile = False
    elif not s._tmpfile:
        pytest.skip("no O_TMPFILE here")
    return s


def test_a_mailbox_removed_under_us_is_created_again(store: MaildirStore) -> None:
    import shutil

    store.deliver(ALICE, b"one\n")
    box = _box(store.root)
    shutil.rmtree(box)  # removed behind the MDA's back (say, an account's mailbox purged and the account back)
    path = store.deliver(ALICE, b"two\n")
    assert path.read_bytes() == b"two\n" and path.parent == box / "new"
    for sub in ("cur", "new", "tmp"):
        assert (box / sub).is_dir() and (box / ".Junk" / sub).is_dir()
    assert (box / ".Junk" / "maildirfolder").exists()
    assert read_usage(box) == (4, 1)  # the counter was recomputed for the new mailbox


@pytest.mark.parametrize("gone", ["new", "tmp", ".Junk"])
def test_a_folder_removed_under_us_is_created_again(store: MaildirStore, gone: str) -> None:
    import shutil

    store.deliver(ALICE, b"one\n")
    box = _box(store.root)
    shutil.rmtree(box / gone)
    folder = Folder.JUNK if gone == ".Junk" else Folder.INBOX
    path = store.deliver(ALICE, b"two\n", folder=folder, queue_id="Q1")
    assert path.read_bytes() == b"two\n"
    assert store.deliver(ALICE, b"two\n", folder=folder, queue_id="Q1") == path  # and found again
    assert _files(box)["tmp"] == [] and _files(box)[".Junk/tmp"] == []
    # Written as unnamed files, deliveries never need tmp/ (Maildir readers make it again when they do).
    assert (box / gone).is_dir() or (gone == "tmp" and store._tmpfile)


def test_deliveries_create_the_mailbox_once(store: MaildirStore, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []
    real = Path.mkdir
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: (made.append(self), real(self, *a, **k))[1])
    store.deliver(ALICE, b"first\n")
    assert made  # the first delivery made the folders
    made.clear()
    for i in range(4):
        store.deliver(ALICE, b"m%d\n" % i)
    assert made == []  # the others did not ask again
    assert len(_files(_box(store.root))["new"]) == 5


def test_without_o_tmpfile_support_it_writes_through_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from mailbastion.mailbox import maildir

    store = MaildirStore(tmp_path / "mail")
    store.deliver(ALICE, b"first\n")  # the mailbox exists; now the file system turns out not to support it
    real = os.open
    refused: list[int] = []

    def no_tmpfile(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if maildir._O_TMPFILE and flags & maildir._O_TMPFILE == maildir._O_TMPFILE:
            refused.append(flags)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(maildir.os, "open", no_tmpfile)
    store._tmpfile = True
    a = store.deliver(ALICE, b"second\n")
    b = store.deliver(ALICE, b"third\n", queue_id="Q7")
    assert a.read_bytes() == b"second\n" and b.read_bytes() == b"third\n"
    assert len(refused) == 1 and store._tmpfile is False  # asked once, then tmp/ for good
    assert _files(_box(store.root))["tmp"] == []
    assert store.usage(ALICE) == len(b"first\nsecond\nthird\n")


@pytest.mark.parametrize("queue_id", [None, "Q9"])
def test_a_failed_write_leaves_nothing(store: MaildirStore, monkeypatch: pytest.MonkeyPatch,
                                       queue_id: str | None) -> None:
    import errno

    from mailbastion.mailbox import maildir

    store.deliver(ALICE, b"kept\n")

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maildir, "write_fd", full)
    with pytest.raises(OSError, match="No space"):
        store.deliver(ALICE, b"lost\n", queue_id=queue_id)
    box = _box(store.root)
    assert len(_files(box)["new"]) == 1 and _files(box)["tmp"] == []
    assert read_usage(box) == (5, 1)


def test_a_copy_already_there_is_not_written_again(store: MaildirStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailbastion.mailbox import maildir

    first = store.deliver(ALICE, b"x" * 10, queue_id="Q2")
    again = store.deliver(ALICE, b"x" * 10, queue_id="Q2")
    assert again == first and len(_files(_box(store.root))["new"]) == 1
    monkeypatch.setattr(maildir, "_exists", lambda name, dir_fd: False)  # found only by the link itself
    assert store.deliver(ALICE, b"x" * 10, queue_id="Q2") == first
    assert len(_files(_box(store.root))["new"]) == 1 and _files(_box(store.root))["tmp"] == []
    assert read_usage(_box(store.root)) == (10, 1)


def test_a_unique_name_never_replaces_a_file(store: MaildirStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.deliver(ALICE, b"first\n")
    monkeypatch.setattr(store, "unique_name", lambda size: first.name)  # the impossible clash, forced
    with pytest.raises(FileExistsError):
        store.deliver(ALICE, b"other\n")
    assert first.read_bytes() == b"first\n" and _files(_box(store.root))["tmp"] == []


def test_quota_counter_read_incrementally_stays_exact(tmp_path: Path) -> None:
    from mailbastion.mailbox import quota

    box = tmp_path
    counter = box / SIZE_FILE
    counter.write_bytes(b"1000S\n10 1\n")
    assert read_usage(box) == (10, 1)
    with counter.open("ab") as f:
        f.write(b"5 1\n-3 -1\n")  # appended by IMAP (an expunge) or another delivery
    assert read_usage(box) == (12, 1)
    counter.write_bytes(b"1000S\n10 1\n7 1\n")  # rewritten, not appended: starts with other bytes
    assert read_usage(box) == (17, 2)
    counter.write_bytes(b"1000S\n10 1\n7 1\nbad\n")  # a broken line after the part known
    assert read_usage(box) is None
    counter.write_bytes(b"1000S\n10 1\n7 1\n4 1")  # a line still being written is parsed, never remembered
    assert read_usage(box) == (21, 3)
    counter.write_bytes(b"1000S\n10 1\n7 1\n4 1\n")
    assert read_usage(box) == (21, 3)
    counter.write_bytes(b"1000S\n" + b"1 1\n" * 1300)  # past 5120 bytes: recomputed by the caller
    assert read_usage(box) is None
    assert quota.usage(box, 1000) == 0


def test_a_counter_removed_before_the_append_is_recomputed_later(tmp_path: Path) -> None:
    from mailbastion.mailbox import quota

    store = MaildirStore(tmp_path)
    store.deliver(ALICE, b"abc\n")
    (_box(tmp_path) / SIZE_FILE).unlink()
    quota.add_usage(_box(tmp_path), 100)  # nothing to append to: no error, no counter made up
    assert not (_box(tmp_path) / SIZE_FILE).exists()
    assert store.usage(ALICE) == 4


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0,
                    reason="ownership is given only when the MDA runs as root")
def test_as_root_files_and_folders_belong_to_the_roots_owner(store: MaildirStore) -> None:
    import os

    store.root.mkdir(parents=True, exist_ok=True)
    store.deliver(parse_address("bob@example.org"), b"before\n")  # a mailbox made while root owned the root
    os.chown(store.root, 65534, 65534)
    path = store.deliver(ALICE, b"hi\n")
    box = _box(store.root)
    for p in (path, box, box / "new", box / "tmp", box / "cur", box / ".Junk" / "new", box / ".Junk" / "maildirfolder"):
        assert (p.stat().st_uid, p.stat().st_gid) == (65534, 65534), p
    bob = store.root / "example.org" / "bob"
    later = store.deliver(parse_address("bob@example.org"), b"after\n")  # the owner changed: given again
    assert later.stat().st_uid == 65534 and (bob / "new").stat().st_uid == 65534
