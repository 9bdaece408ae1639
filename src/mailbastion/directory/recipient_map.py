"""The address-only recipient map: written inside by the directory, read in the DMZ by the gateway.

The file holds our domains, the addresses of active accounts and the aliases expanded to their final
targets: no password hashes, no account states, nothing about inactive accounts. It is written atomically
(tmp, fsync, rename, fsync of the folder), so a reader sees the old map or the new one, never half of one.

Each map carries a `serial` (greater than the serial of the map it replaces: milliseconds since the epoch,
or the previous serial + 1 when the clock went back) and `generated_at`, the moment the directory was read.
On a split deployment the internal host pushes the file to the gateway (apps/map_push.py), which refuses a
serial older than the one it serves and alarms when `generated_at` is older than `map_push.max_age`.

`RecipientMap` implements the `RecipientResolver` port from that file alone. It checks the file's mtime at
most once per `check_interval` seconds and reloads when it changed. A map that fails to load keeps the last
good one in service (and logs); a map never loaded resolves every domain as not ours, which fails closed:
the gateway then refuses every recipient rather than accepting for unknown ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailbastion.core.address import Address
from mailbastion.core.ports import Resolution
from mailbastion.directory import resolution

log = logging.getLogger("mailbastion.directory.recipient_map")

FORMAT = "mailbastion-recipient-map"
VERSION = 1


@dataclass(frozen=True, slots=True)
class MapData:
    domains: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    recipient_delimiter: str = "+"
    leavers: Mapping[str, str] = field(default_factory=dict)  # leaver → successor, named in the 5.1.1 refusal
    serial: int = 0  # 0: a map written before serials (or none loaded)
    generated_at: float | None = None  # seconds since the epoch (UTC) when the directory was read

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the directory was read for this map (never negative); None when unknown."""
        if self.generated_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.generated_at)

    def lookups(self) -> resolution.Lookups:
        return resolution.Lookups(
            is_local_domain=lambda d: d.lower() in self.domains,
            is_active=lambda a: a in self.addresses,
            alias_targets=lambda a: self.aliases.get(a, ()),
            successor_of=self.leavers.get,
        )


def previous_serial(path: Path) -> int:
    """The serial of the map at `path`, 0 when there is none or it does not parse."""
    try:
        return read_map(path).serial
    except (OSError, ValueError):
        return 0


def next_serial(previous: int, now: float | None = None) -> int:
    """A serial greater than `previous`: the clock in milliseconds, or previous + 1 if the clock went back."""
    return max(previous + 1, int((time.time() if now is None else now) * 1000))


def encode_map(*, domains: Iterable[str], addresses: Iterable[str], aliases: Mapping[str, Sequence[str]],
               recipient_delimiter: str = "+", serial: int, generated_at: float | None = None,
               leavers: Mapping[str, str] | None = None) -> bytes:
    """The file's bytes (JSON, UTF-8)."""
    when = dt.datetime.fromtimestamp(time.time() if generated_at is None else generated_at, dt.UTC)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "serial": serial,
        "generated_at": when.isoformat(timespec="milliseconds"),
        "recipient_delimiter": recipient_delimiter,
        "domains": sorted(set(domains)),
        "addresses": sorted(set(addresses)),
        "aliases": {k: list(v) for k, v in sorted(aliases.items()) if v},
        "leavers": dict(sorted((leavers or {}).items())),
    }
    return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def write_map(path: Path, *, domains: Iterable[str], addresses: Iterable[str],
              aliases: Mapping[str, Sequence[str]], recipient_delimiter: str = "+",
              leavers: Mapping[str, str] | None = None) -> None:
    """Write the map atomically (mode 0644: the gateway's user reads it), with the next serial. Callers that
    may run at once hold a lock around it (the directory's export does)."""
    data = encode_map(domains=domains, addresses=addresses, aliases=aliases,
                      recipient_delimiter=recipient_delimiter, serial=next_serial(previous_serial(path)),
                      leavers=leavers)
    atomic_write(path, data, mode=0o644)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_map(path: Path) -> MapData:
    """Parse a map file. Raises ValueError (or OSError) when it is not a map we wrote."""
    return parse_map(path.read_bytes(), str(path))


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def parse_map(data: bytes, source: str = "<map>") -> MapData:
    """Parse a map's bytes. Raises ValueError when they are not a map we wrote (JSON, format, version, types)."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{source}: not a {FORMAT} version {VERSION}")
    aliases = doc.get("aliases", {})
    leavers = doc.get("leavers", {})  # absent in maps written before issue 13
    if not isinstance(leavers, dict) or not all(isinstance(v, str) for v in leavers.values()):
        raise ValueError(f"{source}: leavers must be an object of strings")
    domains, addresses, serial = doc.get("domains", []), doc.get("addresses", []), doc.get("serial", 0)
    if not isinstance(aliases, dict) or not all(isinstance(v, list) for v in aliases.values()):
        raise ValueError(f"{source}: aliases must be an object of lists")
    if not isinstance(domains, list) or not isinstance(addresses, list):
        raise ValueError(f"{source}: domains and addresses must be lists")  # noqa: TRY004 - a bad file, not a bad call
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise ValueError(f"{source}: serial must be a non-negative integer")
    return MapData(
        domains=frozenset(str(d).lower() for d in domains),
        addresses=frozenset(str(a) for a in addresses),
        aliases={str(k): tuple(str(t) for t in v) for k, v in aliases.items()},
        recipient_delimiter=str(doc.get("recipient_delimiter", "+")),
        leavers={str(k): v for k, v in leavers.items()},
        serial=serial,
        generated_at=_timestamp(doc.get("generated_at")),
    )


class RecipientMap:
    """`RecipientResolver` over the JSON map at `path` (see the module docstring for reload and failure)."""

    def __init__(self, path: Path | str, *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._data = MapData()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self.loaded = False
        self._refresh(force=True)

    @property
    def data(self) -> MapData:
        self._refresh()
        return self._data

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.data.domains

    def resolve(self, address: Address) -> Resolution:
        data = self.data
        return resolution.resolve(address, data.lookups(), data.recipient_delimiter)

    def reload(self) -> None:
        """Re-read the file now (ignores the check interval)."""
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked < self.check_interval:
            return
        with self._lock:
            self._checked = now
            try:
                st = self.path.stat()
            except FileNotFoundError:
                if not self.loaded:
                    log.warning("recipient map %s does not exist: no recipient is ours", self.path)
                return
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp and not force:
                return
            try:
                data = read_map(self.path)
            except (OSError, ValueError) as exc:
                log.error("recipient map %s not loaded, keeping the previous one: %s", self.path, exc)
                return
            self._data, self._stamp, self.loaded = data, stamp, True
            log.info("recipient map %s loaded: serial %d, %d domains, %d addresses, %d aliases", self.path,
                     data.serial, len(data.domains), len(data.addresses), len(data.aliases))


__all__ = ["FORMAT", "VERSION", "MapData", "RecipientMap", "atomic_write", "encode_map", "next_serial", "parse_map",
           "previous_serial", "read_map", "write_map"]
