"""SRS (outbound/srs.py) as pure logic: the Shevek/libsrs2 forms, hash and age checks, the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailbastion.outbound.srs import Srs, SrsInvalid, is_srs, load_or_create_key

KEY = b"k" * 32
DAY = 86400.0


def at(days: float) -> Srs:
    return Srs(KEY, max_age_days=21, clock=lambda: 1_800_000_000 + days * DAY)


def test_srs0_round_trip_and_form() -> None:
    address = at(0).forward("Alice.Smith@Sender.Test", "example.org")
    local, _, domain = address.rpartition("@")
    assert domain == "example.org" and local.startswith("SRS0=")
    _, hash_, stamp, host, user = local.split("=", 4)
    assert len(hash_) == 4 and len(stamp) == 2 and host == "Sender.Test" and user == "Alice.Smith"
    assert at(0).reverse(address) == "Alice.Smith@Sender.Test"
    assert at(0).reverse(address.lower()) == "alice.smith@sender.test"  # an MTA that lower-cases still works


def test_tampered_other_key_and_expired_are_refused() -> None:
    address = at(0).forward("alice@sender.test", "example.org")
    with pytest.raises(SrsInvalid, match="hash"):
        at(0).reverse(address.replace("=alice@", "=mallory@"))
    with pytest.raises(SrsInvalid, match="hash"):
        Srs(b"z" * 32).reverse(address)
    assert at(21).reverse(address) == "alice@sender.test"
    with pytest.raises(SrsInvalid, match="expired"):
        at(22).reverse(address)
    assert at(22).check(address) is False and at(0).check(address) is True
    assert at(0).check("alice@example.org") is None
    with pytest.raises(SrsInvalid):
        at(0).reverse("SRS0=garbage@example.org")


def test_an_srs0_of_another_forwarder_becomes_srs1_and_goes_back_to_it() -> None:
    theirs = Srs(b"t" * 32).forward("alice@sender.test", "forwarder.test")
    ours = at(0).forward(theirs, "example.org")
    assert ours.startswith("SRS1=") and "=forwarder.test==" in ours
    assert at(0).reverse(ours) == theirs
    again = at(0).forward(ours.replace("example.org", "third.test"), "example.org")  # SRS1 keeps its first hop
    assert again.startswith("SRS1=") and "=forwarder.test==" in again
    assert is_srs(ours.split("@")[0]) and not is_srs("srsly")


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "srs.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    (tmp_path / "short.key").write_text("c2hvcnQ=\n")
    with pytest.raises(ValueError, match="too short"):
        load_or_create_key(tmp_path / "short.key")
