"""The recipient map push, the internal host's end: export the map when the directory changes, push it.

    publisher = MapPublisher(settings)      # in the internal role (all-in-one too: it re-exports only)
    await publisher.start()                 # exports now, then watches
    ...
    await publisher.stop()

Every `map_push.check_interval` seconds (1 s) it reads the directory's change counter (one small SELECT;
database triggers bump it in every change, whoever makes it) and re-exports the map when it moved; every
`map_push.interval` seconds (300 s) it re-exports anyway, so a leaver whose end date passed drops out of
the map and the gateway sees the map's age renewed. The CLI's own changes export the map too
(`Directory._change`), so the file usually changed before the counter is read.

Whenever the file differs from what a gateway last accepted, it is pushed to that gateway
(apps/map_push.py for the protocol), each gateway on its own, over mutual TLS with the internal client
certificate, verifying the gateway's link certificate against our CA. A failed push is retried after 1, 2,
4 ... up to 30 seconds and logged as `recipient_map.push_failed`; the gateway keeps serving its last map
meanwhile and alarms when it grows old. A directory that cannot be read is logged and tried again at the
next tick; the map in place is never emptied for it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbastion.apps.map_push import PushReply
from mailbastion.config import Settings
from mailbastion.config.sections.split import split_hostport
from mailbastion.core.errors import ConfigError
from mailbastion.core.tasks import cancel_and_wait
from mailbastion.deploy.names import LINK_NAME
from mailbastion.directory.recipient_map import parse_map
from mailbastion.metrics import Sample

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

log = logging.getLogger("mailbastion.map_push")

MAX_BACKOFF = 30.0


def link_client_context(settings: Settings) -> ssl.SSLContext:
    """The internal host's client context on the link: presents tls.internal_client_cert, verifies the
    gateway's link certificate against tls.ca. Raises ConfigError naming the key."""
    from mailbastion.tls_policy import client_context

    t = settings.tls
    for key in ("internal_client_cert", "internal_client_key", "ca"):
        path = settings.path(getattr(t, key))
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (`mailbastion init --role internal` makes it)", key=f"tls.{key}")
    try:
        return client_context(ca=settings.path(t.ca), cert=settings.path(t.internal_client_cert),
                              key=settings.path(t.internal_client_key), min_version=t.min_version)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"the internal client certificate, key or CA do not load: {exc}",
                          key="tls.internal_client_cert") from None


async def push_map(host: str, port: int, data: bytes, serial: int, context: ssl.SSLContext, *,
                   timeout: float, server_name: str = LINK_NAME) -> PushReply:
    """One push. Returns the gateway's reply; raises OSError, ssl.SSLError or TimeoutError when the gateway
    cannot be reached or the link fails."""
    return await _send(host, port, f"PUSH {serial} {len(data)}", data, context, timeout=timeout,
                       server_name=server_name)


async def push_keys(host: str, port: int, data: bytes, context: ssl.SSLContext, *, timeout: float,
                    server_name: str = LINK_NAME) -> PushReply:
    """One push of the ARC sealing keys (outbound/sealing_keys.py); as push_map."""
    return await _send(host, port, f"KEYS {len(data)}", data, context, timeout=timeout, server_name=server_name)


async def _send(host: str, port: int, command: str, data: bytes, context: ssl.SSLContext, *, timeout: float,
                server_name: str) -> PushReply:
    async def talk() -> PushReply:
        reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=server_name,
                                                       ssl_handshake_timeout=timeout)
        try:
            writer.write(command.encode("ascii") + b"\r\n" + data)
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise ConnectionError("the gateway closed the connection without a reply")
        return PushReply.parse(line)

    return await asyncio.wait_for(talk(), timeout)


@dataclass(eq=False)
class _Retry:
    """One kind of push to one gateway: after a failure, tried again in 1, 2, 4 ... MAX_BACKOFF seconds."""

    failures: int = 0
    next_try: float = 0.0  # monotonic

    def due(self, now: float) -> bool:
        return self.next_try <= now

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the delay before the next try."""
        self.failures += 1
        delay = min(MAX_BACKOFF, 2.0 ** (self.failures - 1))
        self.next_try = time.monotonic() + delay
        return delay


@dataclass(eq=False)
class _Target:
    spec: str
    host: str
    port: int
    pushed: tuple[int, int, int] | None = None  # the file (mtime, size, inode) the gateway accepted
    serial: int = 0
    last_success: float | None = None  # time.time()
    retry: _Retry = field(default_factory=_Retry)
    keys_pushed: bytes | None = None  # the sealing keys document the gateway accepted
    keys_retry: _Retry = field(default_factory=_Retry)  # its own: a gateway refusing keys never delays the map


class MapPublisher:
    def __init__(self, settings: Settings, *, directory: Directory | None = None) -> None:
        self.settings = settings
        self.path = settings.path(settings.directory.recipient_map)
        self.targets = [_Target(g, *split_hostport(g)) for g in settings.map_push.gateways]
        self.context = link_client_context(settings) if self.targets else None
        self._directory = directory
        self._generation: int | None = None
        self._exported_at = float("-inf")  # monotonic
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._keys_problem = ""  # the last error reading the sealing keys, logged once

    # -- the directory side ----------------------------------------------------------------------------

    def _open(self) -> Directory:
        if self._directory is None:
            from mailbastion.directory.store import Directory

            self._directory = Directory.from_settings(self.settings)
        return self._directory

    def _generation_now(self) -> int:
        from mailbastion.directory.snapshot import read_generation

        with self._open().engine.connect() as conn:
            return read_generation(conn)

    def _export(self) -> None:
        self._open().export_recipient_map(self.path)
        self._exported_at = time.monotonic()

    def _refresh(self) -> None:
        """Export when the directory changed or the interval passed (runs in a thread)."""
        generation = self._generation_now()
        due = time.monotonic() - self._exported_at >= self.settings.map_push.interval
        if due or generation != self._generation or not self.path.exists():
            self._export()
        self._generation = generation

    # -- the gateway side ------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _push(self, target: _Target, stamp: tuple[int, int, int]) -> None:
        assert self.context is not None
        data = await asyncio.to_thread(self.path.read_bytes)
        serial = parse_map(data, str(self.path)).serial
        try:
            reply = await push_map(target.host, target.port, data, serial, self.context,
                                   timeout=self.settings.map_push.timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            reply = PushReply(499, f"{type(exc).__name__}: {exc}"[:200])
        if reply.is_success or reply.code == 409:  # 409: the gateway has a newer map already
            target.pushed, target.serial = stamp, serial
            target.retry.succeeded()
            target.last_success = time.time()
            log.info("recipient_map.pushed gateway=%s serial=%d bytes=%d reply=%d %s", target.spec, serial, len(data),
                     reply.code, reply.text)
            return
        delay = target.retry.failed()
        log.warning("recipient_map.push_failed gateway=%s serial=%d reply=%d %s retry_in=%.0fs", target.spec, serial,
                    reply.code, reply.text, delay)

    async def _push_keys(self, target: _Target, data: bytes) -> None:
        """The ARC sealing keys, to a gateway that has not accepted this document yet (a failure is retried
        with the same back-off as the map, counted apart)."""
        assert self.context is not None
        try:
            reply = await push_keys(target.host, target.port, data, self.context, timeout=self.settings.map_push.timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            reply = PushReply(499, f"{type(exc).__name__}: {exc}"[:200])
        if reply.is_success:
            target.keys_pushed = data
            target.keys_retry.succeeded()
            log.info("arc_keys.pushed gateway=%s reply=%d %s", target.spec, reply.code, reply.text)
            return
        delay = target.keys_retry.failed()
        log.warning("arc_keys.push_failed gateway=%s reply=%d %s retry_in=%.0fs", target.spec, reply.code, reply.text,
                    delay)

    def _keys(self) -> bytes | None:
        """The sealing keys document for the gateways, or None when the key store cannot be read now."""
        from mailbastion.outbound.sealing_keys import encode_keys, sealing_keys

        try:
            data = encode_keys(sealing_keys(self.settings))
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._keys_problem:  # once per problem, not at every check
                log.error("arc_keys.read_failed error=%s (the gateways keep what they hold)", problem)
            self._keys_problem = problem
            return None
        self._keys_problem = ""
        return data

    async def tick(self) -> None:
        """One round: refresh the file if due, push it wherever it is not yet accepted; the same for the ARC
        sealing keys."""
        try:
            await asyncio.to_thread(self._refresh)
        except Exception as exc:  # noqa: BLE001 - the directory may be briefly unreachable; retry next tick
            log.error("recipient_map.export_failed error=%s: %s (the map in place stays)", type(exc).__name__, exc)
        stamp = self._stamp()
        if stamp is None:
            return
        now = time.monotonic()
        due = [t for t in self.targets if t.pushed != stamp and t.retry.due(now)]
        await asyncio.gather(*(self._push(t, stamp) for t in due))
        keys = await asyncio.to_thread(self._keys) if self.targets else None
        if keys is None:
            return
        now = time.monotonic()
        due = [t for t in self.targets if t.keys_pushed != keys and t.keys_retry.due(now)]
        await asyncio.gather(*(self._push_keys(t, keys) for t in due))

    async def _loop(self) -> None:
        while True:
            await self.tick()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.map_push.check_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def push_soon(self) -> None:
        """Look now rather than at the next tick."""
        self._wake.set()

    async def start(self) -> list[str]:
        """Export the map now (the directory is opened and migrated here) and start watching."""
        await asyncio.to_thread(self._refresh)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="recipient-map-publisher")
        where = ", ".join(t.spec for t in self.targets) or "none (the gateway role of this process reads the file)"
        return [f"recipient map           {self.path} (pushed to: {where})"]

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def samples(self) -> list[Sample]:
        return [Sample("map_push_last_success_timestamp_seconds", "When each gateway last accepted the recipient map",
                       t.last_success, {"gateway": t.spec}) for t in self.targets if t.last_success is not None]


__all__ = ["MAX_BACKOFF", "MapPublisher", "link_client_context", "push_keys", "push_map"]

