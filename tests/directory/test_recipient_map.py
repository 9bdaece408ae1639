"""The address-only recipient map: rewritten after every change, read by RecipientMap with reload."""

from __future__ import annotations

import json
from pathlib import Path

from mailbastion.core.address import parse_address
from mailbastion.core.ports import RecipientResolver, ResolutionKind
from mailbastion.directory import Directory, RecipientMap


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def test_map_is_rewritten_after_every_change(tmp_path: Path) -> None:
    path = tmp_path / "gw" / "map.json"
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", recipient_map=path)
    d.add_domain("example.org", by="admin")
    assert _doc(path)["domains"] == ["example.org"] and _doc(path)["addresses"] == []
    pw = d.add_account("alice@example.org", None, "admin")
    assert _doc(path)["addresses"] == ["alice@example.org"]
    d.add_account("bob@example.org", None, "admin")
    d.add_alias("info@example.org", "bob@example.org", by="admin")
    assert _doc(path)["aliases"] == {"info@example.org": ["bob@example.org"]}
    d.deactivate("bob@example.org", "hr", "leaver")
    doc = _doc(path)
    assert doc["addresses"] == ["alice@example.org"] and doc["aliases"] == {}
    text = path.read_text()
    assert "bob" not in text and "argon2" not in text and "disabled" not in text and str(pw) not in text
    assert not list(path.parent.glob("*.tmp"))


def test_recipient_map_resolves_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", recipient_map=path)
    d.add_domain("example.org", by="admin")
    d.add_account("alice@example.org", None, "admin")
    d.add_alias("all@example.org", "alice@example.org", by="admin")
    d.add_alias("all@example.org", "friend@remote.net", by="admin")
    clock = [0.0]
    rmap = RecipientMap(path, check_interval=1.0, clock=lambda: clock[0])
    resolver: RecipientResolver = rmap
    assert resolver.is_local_domain("EXAMPLE.org") and not resolver.is_local_domain("remote.net")
    r = resolver.resolve(parse_address("Alice+tag@example.org"))
    assert r.kind is ResolutionKind.LOCAL and str(r.address) == "alice@example.org"
    r = resolver.resolve(parse_address("all@example.org"))
    assert r.kind is ResolutionKind.ALIAS
    assert [str(t) for t in r.targets] == ["alice@example.org", "friend@remote.net"]
    assert resolver.resolve(parse_address("carol@example.org")).kind is ResolutionKind.UNKNOWN_USER
    assert resolver.resolve(parse_address("x@nowhere.net")).kind is ResolutionKind.UNKNOWN_DOMAIN

    d.add_account("carol@example.org", None, "admin")
    # Within the check interval the old map stays in service (no stat per lookup) ...
    assert rmap.resolve(parse_address("carol@example.org")).kind is ResolutionKind.UNKNOWN_USER
    clock[0] += 1.5  # ... after it, the changed mtime triggers a reload.
    assert rmap.resolve(parse_address("carol@example.org")).kind is ResolutionKind.LOCAL
    d.deactivate("alice@example.org", "hr", "leaver")
    clock[0] += 1.5
    assert rmap.resolve(parse_address("alice@example.org")).kind is ResolutionKind.UNKNOWN_USER


def test_missing_or_broken_map_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    rmap = RecipientMap(path, check_interval=0)
    assert not rmap.loaded
    assert rmap.resolve(parse_address("a@example.org")).kind is ResolutionKind.UNKNOWN_DOMAIN
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", recipient_map=path)
    d.add_domain("example.org", by="admin")
    d.add_account("a@example.org", None, "admin")
    assert rmap.resolve(parse_address("a@example.org")).kind is ResolutionKind.LOCAL
    path.write_text("{not json")
    # a broken file keeps the last good map in service
    assert rmap.resolve(parse_address("a@example.org")).kind is ResolutionKind.LOCAL
