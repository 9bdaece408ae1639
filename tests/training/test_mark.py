"""The simulation mark: made only with the deployment's key, bound to the message's Message-ID, Subject and
body, so that neither a mark made without the key nor a real mark copied onto other content is recognised."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

from mailbastion.config import Settings
from mailbastion.training.simulation import (
    MARK_HEADER,
    load_key,
    load_templates,
    recognise,
    simulation_message,
    verify,
)

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


def settings_in(root: Path) -> Settings:
    return Settings.model_validate({"server": {"data_dir": str(root)}})


def message(key: bytes, token: str = "tok-123") -> bytes:
    t = load_templates()["mailbox-full"]
    return simulation_message(t, key, campaign="q4", token=token, recipient="alice@example.org",
                              link=f"https://portal.example.org/l/q4/{token}", domain="example.org", now=NOW)


def test_the_key_is_made_once_private_and_the_mark_verifies(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    key = load_key(s)
    path = s.path(s.training.simulation_key)
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600 and load_key(s) == key
    raw = message(key)
    hit = recognise(raw, s)
    assert hit is not None and (hit.campaign, hit.token) == ("q4", "tok-123")
    assert b"https://portal.example.org/l/q4/tok-123" in raw and raw.count(MARK_HEADER.encode()) == 1
    # as the MDA writes it (LF line ends) and as a client forwards it: still ours
    assert verify(raw.replace(b"\r\n", b"\n"), key) == hit


def test_a_mark_made_without_the_key_is_not_recognised(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    forged = message(os.urandom(32))  # right shape, another key
    assert recognise(forged, s) is None
    raw = message(load_key(s))
    head, _, body = raw.partition(b"\r\n\r\n")
    bad_mac = head.replace(b"; s=", b"; s=A") + b"\r\n\r\n" + body
    assert recognise(bad_mac, s) is None
    no_mac = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(MARK_HEADER.encode()))
    assert recognise(no_mac + b"\r\n\r\n" + body, s) is None


def test_a_real_mark_copied_onto_other_content_is_not_recognised(tmp_path: Path) -> None:
    s = settings_in(tmp_path)
    raw = message(load_key(s))
    assert recognise(raw.replace(b"https://portal.example.org/l/q4/", b"https://evil.example/steal/"), s) is None
    assert recognise(raw.replace(b"Subject: Action required", b"Subject: Payroll update"), s) is None
    head, _, body = raw.partition(b"\r\n\r\n")
    twice = head + b"\r\n" + next(ln for ln in head.split(b"\r\n") if ln.startswith(MARK_HEADER.encode()))
    assert recognise(twice + b"\r\n\r\n" + body, s) is None  # two marks: none is honoured
