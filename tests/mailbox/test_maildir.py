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
