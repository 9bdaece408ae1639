"""Our auth socket: Dovecot's Lua passdb/userdb (auth.lua) asks it, and the directory's code answers.

One request per line, one answer per line; fields are separated by TAB, and `\\`, TAB, CR and LF inside a
field are written `\\\\`, `\\t`, `\\r`, `\\n`:

    VERIFY <user> <password> <client ip> <service> <secured> <session>    (secured: "TLS" or refused)
        OK user=<account> userdb_home=<Maildir> userdb_uid=<n> userdb_gid=<n> [userdb_quota_rule=*:bytes=<n>]
        FAIL                                   (the same for every failure: unknown, wrong, inactive, locked out)
        TEMPFAIL <reason>                      (the directory could not be read: Dovecot answers a temporary error)
    USER <user>
        OK home=<Maildir> uid=<n> gid=<n> [quota_rule=*:bytes=<n>]  |  NOTFOUND  |  TEMPFAIL <reason>

VERIFY goes through `LoginGuard.attempt` (directory/login.py): main or app password, active account only,
throttled per account and client, failures logged, lockouts audited. USER answers for any account that is
not deleted (where its mail lives; logging in is VERIFY's business). The socket is reachable only by
Dovecot's auth workers (its owner, mode 0600); password checks run in a pool of their own threads so that
argon2 never blocks the event loop or the MDA's threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from mailbastion import metrics
from mailbastion.core.address import AddressError
from mailbastion.directory.login import LoginGuard
from mailbastion.directory.models import AccountState
from mailbastion.directory.resolution import to_address
from mailbastion.directory.store import Directory
from mailbastion.imap.layout import MailUser
from mailbastion.mailbox.maildir import MaildirStore

log = logging.getLogger("mailbastion.imap.auth")

MAX_LINE = 16 * 1024  # a user name and a password; longer is refused
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"}
_UNESCAPES = {"\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def escape(value: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape(value: str) -> str:
    out, chars = [], iter(value)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPES.get(nxt, nxt))
        else:
            out.append(c)
    return "".join(out)


def line(*fields: str) -> bytes:
    return ("\t".join(escape(f) for f in fields) + "\n").encode("utf-8")


class AuthSocketServer:
    """Serves auth.lua on `path`. `start()` binds (replacing a stale socket) and gives the socket to `owner`
    (uid, gid) with mode 0600; `close()` stops and removes it."""

    def __init__(self, path: Path, guard: LoginGuard, store: MaildirStore, mail_user: MailUser, *,
                 owner: tuple[int, int] | None = None, threads: int | None = None) -> None:
        self.path = path
        self.guard = guard
        self.directory: Directory = guard.directory
        self.store = store
        self.mail_user = mail_user
        self.owner = owner
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads or max(2, os.cpu_count() or 2),
                                                           thread_name_prefix="imap-auth")
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(self.path.parent, 0o711)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE + 2)
        os.chmod(self.path, 0o600)
        if self.owner is not None and os.geteuid() == 0:
            os.chown(self.path, *self.owner)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                self.requests += 1
                fields = [unescape(f) for f in raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")]
                answer = await loop.run_in_executor(self._pool, self.answer, fields)
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # -- the answers (in a pool thread) ----------------------------------------------------------------

    def answer(self, fields: list[str]) -> bytes:
        """One answer line for one request (see the module docstring). Never raises."""
        try:
            if fields[0] == "VERIFY" and len(fields) >= 3:
                fields += [""] * (7 - len(fields))
                return self._verify(fields[1], fields[2], fields[3], fields[4] or "imap", fields[5])
            if fields[0] == "USER" and len(fields) >= 2:
                return self._user(fields[1])
            log.error("imap.auth unknown request %r", fields[0][:20])
            return line("TEMPFAIL", "unknown request")
        except SQLAlchemyError as exc:
            log.error("imap.auth the directory cannot be read: %s", str(exc).splitlines()[0])
            return line("TEMPFAIL", "directory unavailable")
        except Exception:  # a request must get an answer; Dovecot reports an internal error
            log.exception("imap.auth request failed")
            return line("TEMPFAIL", "internal error")

    def _verify(self, user: str, password: str, client: str, service: str, secured: str) -> bytes:
        if secured != "TLS":
            # Dovecot counts a connection from an address to itself (localhost) as secure and lets it send a
            # password in clear; we do not: no password is checked that did not come through TLS.
            log.warning("login.refused service=%s user=%s client=%s reason=no_tls (a password sent in clear)",
                        service, user.strip().lower(), client or "unknown")
            metrics.auth_failure(service or "imap", "cleartext")
            return line("FAIL")
        result = self.guard.attempt(user, password, client=client or "unknown", service=service or "imap")
        if not result.ok:
            metrics.auth_failure(service or "imap", "password")
            return line("FAIL")
        fields = self._userdb(result.address, prefix="userdb_")
        return line("OK", f"user={result.address}", *fields)

    def _user(self, user: str) -> bytes:
        try:
            key = to_address(user).normalized
        except (AddressError, ValueError):
            return line("NOTFOUND")
        info = self.directory.account(key)
        if info is None or info.state == AccountState.DELETED:
            return line("NOTFOUND")
        return line("OK", *self._userdb(key))

    def _userdb(self, key: str, *, prefix: str = "") -> list[str]:
        """Where the account's mail lives and as whom it is read, and its own quota when it has one."""
        home = self.store.mailbox_dir(to_address(key))
        fields = [f"{prefix}home={home}", f"{prefix}uid={self.mail_user.uid}", f"{prefix}gid={self.mail_user.gid}"]
        quota = self.directory.mailbox_quota(key)
        if quota is not None:  # None: the default quota_rule of dovecot.conf (mailbox.default_quota_bytes)
            fields.append(f"{prefix}quota_rule=*:bytes={quota}")
        return fields


__all__ = ["AuthSocketServer", "escape", "line", "unescape"]
