"""The quarantine index over the real store's files: sync adds and forgets, keyset pages, per-recipient pages
(+tags ignored), search, and a deleted index rebuilds itself."""

from __future__ import annotations

import os
from pathlib import Path

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, ScoredSymbol, Verdict
from mailbastion.quarantine.index import QuarantineIndex, mailbox_key
from mailbastion.quarantine.store import QuarantineStore

SPAM = Verdict(Action.QUARANTINE, 11.0, (ScoredSymbol("BAYES_99", "", 11.0, "spam"),), None)
VIRUS = Verdict(Action.REJECT, 20.0, (ScoredSymbol("AV_CLAMAV_VIRUS", "Eicar", 20.0, "antivirus"),), None)


def put(store: QuarantineStore, to: str, subject: str, verdict: Verdict = SPAM) -> str:
    raw = f"From: a@outside.example\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    return store.put_sync(Envelope(parse_address("a@outside.example"), (parse_address(to),)), raw, verdict,
                          client="192.0.2.1")


def test_sync_search_and_pages(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    index = QuarantineIndex(store)
    assert oct(os.stat(index.path).st_mode & 0o777) == "0o600"
    ids = [put(store, "bob+news@Example.org" if i % 2 else "carol@example.org", f"offer {i}") for i in range(7)]
    virus = put(store, "bob@example.org", "scan", VIRUS)
    assert index.sync() == 8
    assert index.sync() in (0, 0)  # nothing changed: nothing read (unless the folder changed within a second)
    first = index.search(limit=3)
    assert [e.id for e in first.entries] == sorted([*ids, virus], reverse=True)[:3]
    seen = list(first.entries)
    page = first
    while page.next_before:
        page = index.search(limit=3, before=page.next_before)
        seen += page.entries
    assert sorted(e.id for e in seen) == sorted([*ids, virus]) and len(seen) == 8
    bobs = index.search(recipient="BOB@example.org")
    assert {e.id for e in bobs.entries} == {ids[1], ids[3], ids[5], virus}
    assert index.count(recipient="bob@example.org") == 4 and index.count(malware=True) == 1
    assert [e.subject for e in index.search("OFFER 4").entries] == ["offer 4"]
    assert index.search("av_clamav_virus").entries[0].id == virus  # symbols are searchable
    assert index.fts and index.count("fer 3") == 1  # a substring, through the trigram index
    assert index.count("r 6") == 1 and index.count("zz") == 0  # under 3 characters: scanned
    assert index.count('"') == 0 and index.count("offer OR scan") == 0  # FTS syntax is searched for, not obeyed
    store.remove(ids[0])
    index.sync()
    assert index.count() == 7 and not index.search("offer 0").entries


def test_a_lost_index_rebuilds(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    put(store, "bob@example.org", "kept")
    index = QuarantineIndex(store)
    index.sync()
    index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(index.path) + suffix).unlink(missing_ok=True)
    again = QuarantineIndex(store)
    assert again.sync() == 1 and again.search("kept").entries


def test_mailbox_key() -> None:
    assert mailbox_key("Bob+News@Example.ORG") == "bob@example.org"
    assert mailbox_key("<bob@example.org>") == "bob@example.org"
    assert mailbox_key("bob-x@example.org", "-") == "bob@example.org"
