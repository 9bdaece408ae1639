"""The recipient map push, the gateway's end: a small listener on the internal link, and the age alarm.

The internal host (apps/map_publisher.py) connects to `map_push.listen`; TLS from the first byte, mutual:
the gateway presents its link certificate (`tls.link_cert`, name "gateway-link") and accepts only a client
certificate of our CA that names "internal" (the internal host's), from an address of `map_push.allow`
(default: the MDA's host, lmtp.connect). One push per connection:

    internal -> gateway:   PUSH <serial> <length>CRLF  <length octets: the map file, JSON>
    gateway  -> internal:  200 applied <serial> | 200 unchanged <serial> | 409 ... | 4xx/5xx ...CRLF

    internal -> gateway:   KEYS <length>CRLF  <length octets: the ARC sealing keys, JSON>
    gateway  -> internal:  200 keys applied <n> | 200 keys unchanged <n> | 4xx/5xx ...CRLF

KEYS (outbound/sealing_keys.py): the active RSA key of each sealing domain, which the gateway then holds
alone in `srs.arc_keys_dir` for the ARC seal of forwarded copies; an empty list removes them.

The map is checked whole (format, types, serial) before it replaces the file in service, atomically (tmp,
fsync, rename): the recipient checks see the old map or the new one. A serial older than the one in
service is refused (409): a delayed push never rolls the map back. The gateway never connects inward for
the map; it only answers.

`MapAgeWatch` logs `recipient_map.stale` (warning, every check while it lasts) when the map in service was
read from the directory more than `map_push.max_age` seconds ago, or no map is loaded at all, and
`recipient_map.fresh` once a fresh one arrives. This module imports no directory database code.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from mailbastion.config import Settings
from mailbastion.config.sections.split import split_hostport
from mailbastion.core.errors import ConfigError
from mailbastion.core.tasks import cancel_and_wait
from mailbastion.deploy.link import push_sources
from mailbastion.deploy.names import INTERNAL_CLIENT_NAME
from mailbastion.directory.recipient_map import MapData, RecipientMap, atomic_write, parse_map, read_map
from mailbastion.metrics import Sample
from mailbastion.spool.layout import QueueState, SpoolLayout

log = logging.getLogger("mailbastion.map_push")

MAX_COMMAND = 128  # "PUSH <serial> <length>\r\n"


@dataclass(frozen=True, slots=True)
class PushReply:
    code: int
    text: str

    def line(self) -> bytes:
        return f"{self.code} {self.text}\r\n".encode("ascii", "replace")

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 300

    @classmethod
    def parse(cls, line: bytes) -> PushReply:
        text = line.decode("ascii", "replace").strip()
        code, _, rest = text.partition(" ")
        if not code.isdigit() or len(code) != 3:
            return cls(599, f"unreadable reply {text[:80]!r}")
        return cls(int(code), rest)


def parse_command(line: bytes) -> tuple[str, int | None, int]:
    """`PUSH <serial> <length>` -> ("PUSH", serial, length); `KEYS <length>` -> ("KEYS", None, length).
    Raises ValueError."""
    parts = line.decode("ascii").split()
    if len(parts) == 2 and parts[0] == "KEYS" and parts[1].isdigit():
        return "KEYS", None, int(parts[1])
    if len(parts) != 3 or parts[0] != "PUSH" or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError("expected PUSH <serial> <length> or KEYS <length>")
    return "PUSH", int(parts[1]), int(parts[2])


def link_server_context(settings: Settings) -> ssl.SSLContext:
    """The push listener's context: the link certificate, a client certificate of tls.ca required. Raises
    ConfigError naming the key when a file is missing or unusable."""
    from mailbastion.tls_policy import server_context

    t = settings.tls
    for key in ("link_cert", "link_key", "ca"):
        path = settings.path(getattr(t, key))
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (the gateway's bundle holds it: `mailbastion pki issue-gateway` "
                              "on the internal host, then `mailbastion init --role gateway --bundle FILE`)",
                              key=f"tls.{key}")
    try:
        return server_context(settings.path(t.link_cert), settings.path(t.link_key), min_version=t.min_version,
                              client_ca=settings.path(t.ca))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"the link certificate, key or CA do not load: {exc}", key="tls.link_cert") from None


def allowed_networks(settings: Settings) -> list[IPv4Network | IPv6Network]:
    """`map_push.allow`, or the addresses of the MDA's host (the internal host pushes from there)."""
    return push_sources(settings)


def _names(cert: dict[str, object] | None) -> set[str]:
    if not cert:
        return set()
    sans = cert.get("subjectAltName", ())
    return {str(v) for k, v in sans if k == "DNS"} if isinstance(sans, tuple) else set()


class MapReceiver:
    """The push listener. `on_applied(map)` runs after each new map is in place (the role reloads its
    RecipientMap there, so the next RCPT sees it)."""

    def __init__(self, settings: Settings, *, on_applied: Callable[[MapData], None] | None = None) -> None:
        self.settings = settings
        self.path = settings.path(settings.directory.recipient_map)
        self.on_applied = on_applied
        self._server: asyncio.base_events.Server | None = None
        self._lock = asyncio.Lock()
        self.applied = 0

    async def start(self) -> list[str]:
        """Bind map_push.listen. Raises ConfigError (certificates, allow list) or OSError (the address)."""
        p = self.settings.map_push
        ctx = link_server_context(self.settings)
        self.allow = allowed_networks(self.settings)
        host, port = split_hostport(p.listen)
        self._server = await asyncio.start_server(self._serve, host, port, ssl=ctx, ssl_handshake_timeout=p.timeout,
                                                  limit=MAX_COMMAND * 2)
        return [f"map push (from inside)  {p.listen} (mutual TLS; from {', '.join(map(str, self.allow))})"]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            reply = await asyncio.wait_for(self._one(reader, writer, str(peer[0])), self.settings.map_push.timeout)
        except TimeoutError:
            reply = PushReply(421, "timeout")
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.warning("recipient_map.push_refused client=%s error=%s", peer[0], type(exc).__name__)
            writer.close()
            return
        if not reply.is_success:
            log.warning("recipient_map.push_refused client=%s reply=%d %s", peer[0], reply.code, reply.text)
        try:
            writer.write(reply.line())
            await asyncio.wait_for(writer.drain(), 10)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 10)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str) -> PushReply:
        address = ipaddress.ip_address(ip.split("%")[0])
        if not any(address in net for net in self.allow):
            return PushReply(550, f"{ip} may not push the recipient map (map_push.allow)")
        names = _names(writer.get_extra_info("peercert"))
        if INTERNAL_CLIENT_NAME not in names:  # the gateway's own client certificate is our CA's too
            return PushReply(550, f"only the internal host's certificate may push (this one names {sorted(names)})")
        line = await reader.readline()
        try:
            verb, serial, length = parse_command(line[:MAX_COMMAND])
        except (ValueError, UnicodeDecodeError):
            return PushReply(500, "expected PUSH <serial> <length> or KEYS <length>")
        if length > self.settings.map_push.max_bytes:
            return PushReply(552, f"map of {length} bytes is over map_push.max_bytes")
        data = await reader.readexactly(length)
        if verb == "KEYS":
            return await self._apply_keys(data, ip)
        try:
            new = parse_map(data, "pushed map")
        except ValueError as exc:
            return PushReply(554, str(exc)[:200])
        if new.serial != serial:
            return PushReply(554, f"the map's serial is {new.serial}, the command said {serial}")
        return await self._apply(new, data, ip)

    async def _apply(self, new: MapData, data: bytes, ip: str) -> PushReply:
        async with self._lock:
            current = await asyncio.to_thread(self._serial_in_service)
            if new.serial < current:
                return PushReply(409, f"serial {new.serial} is older than the map in service ({current})")
            if new.serial == current:
                return PushReply(200, f"unchanged {current}")
            await asyncio.to_thread(atomic_write, self.path, data, mode=0o644)
        self.applied += 1
        age = new.age()
        log.info("recipient_map.applied serial=%d from=%s bytes=%d domains=%d addresses=%d aliases=%d age=%s",
                 new.serial, ip, len(data), len(new.domains), len(new.addresses), len(new.aliases),
                 f"{age:.1f}s" if age is not None else "unknown")
        if self.on_applied is not None:
            self.on_applied(new)
        return PushReply(200, f"applied {new.serial}")

    async def _apply_keys(self, data: bytes, ip: str) -> PushReply:
        """The sealing keys, held alone in srs.arc_keys_dir (outbound/sealing_keys.py)."""
        from mailbastion.outbound.sealing_keys import decode_keys, gateway_store

        try:
            keys = decode_keys(data)
        except ValueError as exc:
            return PushReply(554, f"sealing keys refused: {exc}"[:200])
        async with self._lock:
            try:
                changed = await asyncio.to_thread(gateway_store(self.settings).hold_only, keys)
            except (ValueError, TypeError) as exc:  # a PEM that does not load as an RSA key
                return PushReply(554, f"sealing keys refused: {exc}"[:200])
            except OSError as exc:
                log.error("arc_keys.write_failed dir=%s error=%s", self.settings.srs.arc_keys_dir, exc)
                return PushReply(451, f"sealing keys not written: {type(exc).__name__}")
        if changed:
            log.info("arc_keys.applied from=%s domains=%s", ip, ",".join(f"{d}:{sel}" for d, (sel, _) in
                                                                          sorted(keys.items())) or "none")
        return PushReply(200, f"keys {'applied' if changed else 'unchanged'} {len(keys)}")

    def _serial_in_service(self) -> int:
        try:
            return read_map(self.path).serial
        except (OSError, ValueError):
            return -1


def queue_samples(layout: SpoolLayout) -> list[Sample]:
    """Entries per queue state (one directory listing each), for the metrics endpoint."""
    out = []
    for state in QueueState:
        try:
            count = sum(1 for _ in os.scandir(layout.state_dir(state)))
        except FileNotFoundError:
            count = 0
        out.append(Sample("queue_messages", "Queue entries by state", float(count), {"state": str(state)}))
    return out


class MapAgeWatch:
    """Alarms while the map in service is older than `max_age` (or missing): `recipient_map.stale`."""

    def __init__(self, recipients: RecipientMap, max_age: float, *, interval: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.recipients = recipients
        self.max_age = max_age
        self.interval = interval if interval is not None else min(60.0, max(1.0, max_age / 4))
        self.clock = clock
        self.stale = False
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Look once; log a transition or a continuing alarm. Returns True when the map is stale."""
        data = self.recipients.data if self.recipients.loaded else None
        age = data.age(self.clock()) if data is not None else None
        stale = age is None or age > self.max_age
        if stale:
            what = "no map loaded: every recipient is refused" if data is None else (
                "map of unknown age" if age is None else f"age={age:.0f}s")
            serial = data.serial if data is not None else 0
            log.warning("recipient_map.stale %s max_age=%.0fs serial=%d path=%s (is the internal host pushing? "
                        "see its recipient_map.push_failed lines)", what, self.max_age, serial, self.recipients.path)
        elif self.stale and data is not None:
            log.info("recipient_map.fresh serial=%d age=%.0fs", data.serial, age)
        self.stale = stale
        return stale

    def samples(self) -> list[Sample]:
        """Gauges for the metrics endpoint."""
        data = self.recipients.data if self.recipients.loaded else None
        age = data.age(self.clock()) if data is not None else None
        out = [Sample("recipient_map_serial", "Serial of the recipient map in service (0: none)",
                      float(data.serial if data is not None else 0))]
        if age is not None:
            out.append(Sample("recipient_map_age_seconds", "Seconds since the directory was read for the map "
                                                           "in service", age))
        return out

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.check)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="recipient-map-age")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


__all__ = ["MAX_COMMAND", "MapAgeWatch", "MapReceiver", "PushReply", "allowed_networks", "link_server_context",
           "parse_command", "queue_samples"]
