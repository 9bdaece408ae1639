"""Learning from users' Junk moves: the sockets the IMAPSieve scripts pipe a moved message to.

Dovecot's IMAPSieve runs `learn-spam.sieve` when a user copies or moves a message into Junk and
`learn-ham.sieve` when out of it (not to Trash); their `pipe "learn-spam"` / `pipe "learn-ham"` connect to
the socket of that name in `<base_dir>/learn/` and speak Dovecot's script protocol (lib-program-client,
version 4):

    VERSION\\tscript\\t4\\t0\\n  env_USER=<user>\\n ...  -\\n (or noreply\\n)  <args>\\n ...  \\n  <message> EOF
    answer: +\\n (success) or -\\n, unless the client said noreply

The same guards as the report addresses (spam/report.py): only our own authenticated users teach the model
(the socket belongs to the mail user alone, `env_USER` is the user the IMAP process logged in, and it must be
an active account of ours), at most `imap.learn.max_per_hour` messages per user per hour, and every message
learned or refused is logged (`mailbastion.imap.learn`) and recorded in the model's learned.log
(source "junk-move" or "junk-rescue"). The answer is sent as soon as the message is read, so a user's MOVE
never waits for learning; a bounded queue feeds one learner thread (the model is saved under its lock).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailbastion.spam.store import ModelStore

log = logging.getLogger("mailbastion.imap.learn")

MAX_HEADER = 64 * 1024
QUEUE_SIZE = 256
SOURCES = {True: "junk-move", False: "junk-rescue"}


@dataclass(frozen=True, slots=True)
class LearnRequest:
    user: str
    is_spam: bool
    message: bytes


class LearnRateLimit:
    """At most `per_hour` messages per user in any hour (a sliding window)."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._seen: dict[str, collections.deque[float]] = {}

    def allow(self, user: str) -> bool:
        now = self._clock()
        seen = self._seen.setdefault(user, collections.deque())
        while seen and seen[0] <= now - 3600:
            seen.popleft()
        if len(seen) >= self.per_hour:
            return False
        seen.append(now)
        return True


class LearnSocketServer:
    """Two UNIX sockets (spam and ham) in `directory`, owned by `owner` with mode 0600."""

    def __init__(self, directory: Path, store: ModelStore, *, is_our_user: Callable[[str], bool],
                 per_hour: int = 200, max_size: int = 64 * 1024 * 1024,
                 owner: tuple[int, int] | None = None, names: tuple[str, str] = ("learn-spam", "learn-ham")) -> None:
        self.directory = directory
        self.store = store
        self.is_our_user = is_our_user
        self.limit = LearnRateLimit(per_hour)
        self.max_size = max_size
        self.owner = owner
        self.names = names
        self._servers: list[asyncio.AbstractServer] = []
        self._queue: asyncio.Queue[LearnRequest] = asyncio.Queue(QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self.learned = 0  # messages learned since start (tests and the log)
        self.refused = 0

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(self.directory, 0o711)
        for name, is_spam in zip(self.names, (True, False), strict=True):
            path = self.directory / name
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server = await asyncio.start_unix_server(functools.partial(self._serve, is_spam=is_spam), path=str(path),
                                                     limit=MAX_HEADER)
            os.chmod(path, 0o600)
            if self.owner is not None and os.geteuid() == 0:
                os.chown(path, *self.owner)
            self._servers.append(server)
        self._worker = asyncio.create_task(self._learn_forever(), name="imap-learn")

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for name in self.names:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()

    def configure(self, per_hour: int) -> None:
        self.limit.per_hour = per_hour

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, is_spam: bool) -> None:
        try:
            env, noreply = await self._read_header(reader)
            message = await reader.read(self.max_size + 1)
            while not reader.at_eof() and len(message) <= self.max_size:
                more = await reader.read(self.max_size + 1 - len(message))
                if not more:
                    break
                message += more
            if not noreply:
                writer.write(b"+\n")  # the user's MOVE does not wait for learning
                await writer.drain()
            self._accept(env.get("USER", ""), is_spam, message)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as exc:
            log.warning("imap.learn bad request from Dovecot: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read_header(reader: asyncio.StreamReader) -> tuple[dict[str, str], bool]:
        first = (await reader.readuntil(b"\n")).decode("utf-8", "replace").rstrip("\n")
        if not first.startswith("VERSION\tscript\t"):
            raise ValueError(f"not Dovecot's script protocol: {first[:40]!r}")
        env: dict[str, str] = {}
        noreply = False
        while True:  # env_KEY=VALUE lines, then "-" or "noreply"
            text = (await reader.readuntil(b"\n")).decode("utf-8", "replace").rstrip("\n")
            if text.startswith("env_"):
                key, _, value = text[4:].partition("=")
                env[key] = value
                continue
            noreply = text == "noreply"
            break
        while (await reader.readuntil(b"\n")).rstrip(b"\n"):  # arguments (unused), up to an empty line
            pass
        return env, noreply

    def _accept(self, user: str, is_spam: bool, message: bytes) -> None:
        label = "spam" if is_spam else "ham"
        why = None
        if not user:
            why = "no user"
        elif len(message) > self.max_size:
            why = f"message over {self.max_size} bytes"
        elif not message.strip():
            why = "empty message"
        elif not self.limit.allow(user):
            why = f"more than {self.limit.per_hour} messages in an hour"
        if why is None:
            try:
                self._queue.put_nowait(LearnRequest(user, is_spam, message))
                return
            except asyncio.QueueFull:
                why = "learning queue full"
        self.refused += 1
        log.warning("imap.learn refused as=%s user=%s size=%d: %s", label, user or "-", len(message), why)

    async def _learn_forever(self) -> None:
        while True:
            request = await self._queue.get()
            source = SOURCES[request.is_spam]
            label = "spam" if request.is_spam else "ham"
            try:
                ours = await asyncio.to_thread(self.is_our_user, request.user)  # a database read
            except Exception as exc:  # noqa: BLE001 - cannot tell: do not learn
                log.error("imap.learn refused as=%s user=%s: the directory cannot be read: %s", label, request.user,
                          exc)
                self.refused += 1
                continue
            if not ours:
                self.refused += 1
                log.warning("imap.learn refused as=%s user=%s size=%d: not an active account of ours", label,
                            request.user, len(request.message))
                continue
            try:
                steps = await asyncio.to_thread(self.store.learn, request.message, is_spam=request.is_spam,
                                                source=source, note=f"moved by {request.user}")
            except Exception as exc:  # noqa: BLE001 - one message's failure must not stop learning
                log.error("imap.learn failed as=%s user=%s: %s", label, request.user, exc)
                continue
            self.learned += 1
            log.info("imap.learn learned as=%s user=%s size=%d source=%s steps=%s", label, request.user,
                     len(request.message), source, steps)


__all__ = ["LearnRateLimit", "LearnRequest", "LearnSocketServer"]
