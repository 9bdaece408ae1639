"""Dovecot as a supervised part of the internal role: `mailbastion serve` (roles internal and all) runs it.

    imap = DovecotService(settings, directory=directory)   # directory: the server's, for instant kicks
    lines = await imap.start()      # writes the configuration, starts our sockets and Dovecot; what listens where
    await imap.reload(new_settings) # SIGHUP: configuration rewritten, `doveadm reload` (new certificate too)
    await imap.kick("alice@example.org")
    await imap.stop()               # Dovecot's master and every IMAP session end

It is a role of `serve` as `apps/process.py` runs them (name, prefork, start, reload, stop, children), so
the internal and all-in-one roles list it next to the MDA's. Nothing heavy happens before `start()` (the
directory is opened there), so building it before the server forks is safe.

start() refuses (ConfigError, one clear line) when Dovecot, its Lua or Sieve modules or lua-socket are not
installed, the mail user is missing, the public certificate is missing or broken, Dovecot rejects the
configuration, or a listener cannot bind. Supervision: a Dovecot that exits on its own is logged and started
again after 1, 2, 4 ... 30 seconds; `stop()` ends that. Dovecot's log lines go to our log
(`mailbastion.imap.dovecot`) at their own level.

Besides Dovecot, the service runs the auth socket (auth_socket.py), the learning sockets (learn_socket.py)
and the session guard (session_guard.py), and prepares the Maildirs for the mail user (layout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbastion.core.child import run_child
from mailbastion.core.errors import ConfigError
from mailbastion.directory.cache import DirectoryCache
from mailbastion.directory.login import LoginGuard
from mailbastion.directory.store import Directory
from mailbastion.directory.throttle import LoginThrottle
from mailbastion.imap import dovecot_config
from mailbastion.imap.auth_socket import AuthSocketServer
from mailbastion.imap.layout import DovecotLayout, MailUser
from mailbastion.imap.learn_socket import LearnSocketServer
from mailbastion.imap.mail_root import prepare_paths
from mailbastion.imap.session_guard import SessionGuard
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.tls_policy import server_context_from_settings
from mailbastion.spam.store import ModelStore

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

log = logging.getLogger("mailbastion.imap")
dovecot_log = logging.getLogger("mailbastion.imap.dovecot")

INSTALL = "apt-get install dovecot-imapd dovecot-auth-lua dovecot-sieve lua-socket"
START_TIMEOUT = 90.0  # a busy machine starts Dovecot slowly
DOVEADM_TIMEOUT = 30.0  # `who` and `kick` answer at once; a Dovecot that does not must not hold the session guard
_LEVELS = {"Debug": logging.DEBUG, "Info": logging.INFO, "Warning": logging.WARNING, "Error": logging.ERROR,
           "Fatal": logging.CRITICAL, "Panic": logging.CRITICAL}


class DovecotService:
    name = "imap"

    def __init__(self, settings: Settings, *, directory: Directory | None = None,
                 model_store: ModelStore | None = None, throttle: LoginThrottle | None = None) -> None:
        self.settings = settings
        self.layout = DovecotLayout.from_settings(settings)
        self._directory = directory
        self.model_store = model_store or ModelStore(settings.path(settings.spam.classifier.model_path))
        # `serve` passes the process's throttle (directory/throttle.py process_throttle), shared with submission.
        self.throttle = throttle if throttle is not None else LoginThrottle.from_settings(settings)
        self.mail_user: MailUser | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.auth: AuthSocketServer | None = None
        self.learn: LearnSocketServer | None = None
        self.guard: SessionGuard | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0

    # -- the lifecycle ---------------------------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            self._directory = Directory.from_settings(self.settings)
        return self._directory

    def prefork(self) -> None:
        """Nothing to fork: Dovecot is started (and supervised) by `start()`."""

    def children(self) -> list[Any]:
        """None for the server to watch: a Dovecot that dies is started again here."""
        return []

    async def start(self) -> list[str]:
        """See the module docstring. On failure everything started so far is stopped again."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        try:
            await asyncio.to_thread(lambda: self.directory)  # opens (and migrates) the directory
            await asyncio.to_thread(self._prepare)
            await self._start_sockets()
            await self._start_dovecot()
        except BaseException:
            await self.stop()
            raise
        self.directory.on_deactivated(self._kick_soon)
        cache = await asyncio.to_thread(DirectoryCache, self.directory,
                                        check_interval=min(1.0, self.settings.imap.kick_interval_seconds))
        self.guard = SessionGuard(cache, who=self.who, kick=self.kick,
                                  interval=self.settings.imap.kick_interval_seconds)
        self._tasks.append(asyncio.create_task(self.guard.run(), name="imap-session-guard"))
        return self.describe()

    def describe(self) -> list[str]:
        imap = self.settings.imap
        lines = [f"IMAP (STARTTLS required) {a}" for a in imap.listen]
        lines += [f"IMAP (implicit TLS)     {a}" for a in imap.listen_tls]
        lines.append(f"IMAP mail user          {self.mail_user.name if self.mail_user else imap.mail_user}; "
                     f"Dovecot configuration in {self.layout.conf_dir}")
        return lines

    async def stop(self, drain_seconds: float = 15.0) -> None:
        """Stop Dovecot (every session ends; it gets at most `drain_seconds`, then SIGKILL) and our sockets.
        Safe to call twice, or after a failed start."""
        timeout = min(max(drain_seconds, 1.0), 30.0)
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._stop_dovecot(timeout)
        for server in (self.learn, self.auth):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.close()
        self.learn = self.auth = None

    async def reload(self, settings: Settings | None = None) -> None:
        """SIGHUP: write the configuration again from `settings` (the listeners, TLS files and policy, quota,
        learning) and have Dovecot re-read it (`doveadm reload`: new connections get the new certificate;
        open sessions go on). The throttle and learning limits take the new values. On a configuration
        Dovecot refuses, the running one is kept and the error logged. Never raises."""
        new = settings or self.settings
        try:
            server_context_from_settings(new)  # the certificate and key still load
            if new.imap.base_dir != self.settings.imap.base_dir or new.imap.mail_user != self.settings.imap.mail_user:
                log.warning("imap: imap.base_dir and imap.mail_user change only at a restart")
            old = self.settings
            self.settings = new
            try:
                changed = await asyncio.to_thread(self._write_config)
            except ConfigError:
                self.settings = old
                await asyncio.to_thread(self._write_config)
                raise
            self.throttle.configure(new)
            if self.learn is not None:
                self.learn.configure(new.imap.learn.max_per_hour)
            if self.proc is not None and self.proc.returncode is None:
                self.proc.send_signal(signal.SIGHUP)
            log.info("imap: Dovecot reloaded%s", f" ({len(changed)} files changed)" if changed else "")
        except ConfigError as exc:
            log.error("imap: reload refused, Dovecot keeps its running configuration: %s", exc)

    # -- sessions -----------------------------------------------------------------------------------

    async def who(self) -> set[str]:
        """The users with an IMAP session now (`doveadm who`)."""
        out = await self._doveadm("-f", "tab", "who", "-1")
        users = set()
        for row in out.splitlines()[1:]:  # a header line first
            name = row.split("\t", 1)[0].strip()
            if name:
                users.add(name)
        return users

    async def kick(self, address: str) -> bool:
        """Close every IMAP session of `address` now (`doveadm kick`). True when Dovecot was asked."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            await self._doveadm("kick", address.strip().lower())
        except OSError as exc:
            log.error("imap.kick user=%s failed: %s", address, exc)
            return False
        return True

    def _kick_soon(self, address: str) -> None:
        """Directory.on_deactivated: may be called from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping:
            return
        loop.call_soon_threadsafe(self._track, self._kick_logged(address), f"imap-kick {address}")

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _kick_logged(self, address: str) -> None:
        if await self.kick(address):
            log.warning("imap.kick user=%s: the account was made inactive; its sessions are closed", address)

    async def _doveadm(self, *args: str) -> str:
        """doveadm's output; OSError when it fails or does not answer within DOVEADM_TIMEOUT. Cancelled (stop()
        ending the session guard or a kick) or past the timeout, it is killed with nothing of it left
        (core/child.py)."""
        try:
            done = await run_child([self.settings.imap.doveadm, "-c", str(self.layout.config), *args], DOVEADM_TIMEOUT)
        except TimeoutError:
            raise OSError(f"doveadm {' '.join(args)}: no answer within {DOVEADM_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip() or done.returncode
            raise OSError(f"doveadm {' '.join(args)}: {why}")
        return done.stdout.decode("utf-8", "replace")

    # -- preparing --------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        s = self.settings
        self._check_installed()
        server_context_from_settings(s)  # the public certificate and key: missing or broken refuses here
        self.mail_user = user = MailUser.from_settings(s)
        for folder, mode in ((self.layout.conf_dir, 0o755), (self.layout.sieve_dir, 0o755),
                             (self.layout.state_dir, 0o750)):
            folder.mkdir(parents=True, exist_ok=True, mode=mode)
        self.layout.base_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        internal = [] if user.rootless else [_system_user(dovecot_config.DEBIAN_INTERNAL_USER)]
        prepare_paths(s, user, internal, [self.layout.lua, self.layout.sieve_dir / "x", self.layout.base_dir / "x"])
        self._write_config(force_sieve=True)

    def _check_installed(self) -> None:
        imap = self.settings.imap
        missing = [p for p in (imap.dovecot, imap.doveadm) if not os.access(p, os.X_OK)]
        modules = {"dovecot-auth-lua": "/usr/lib/dovecot/modules/auth/libauthdb_lua.so",
                   "dovecot-sieve": "/usr/lib/dovecot/modules/lib95_imap_sieve_plugin.so"}
        missing += [pkg for pkg, path in modules.items() if not os.path.exists(path)]
        if not glob.glob("/usr/lib/*/lua/5.*/socket/unix.so") and not glob.glob("/usr/lib/lua/5.*/socket/unix.so"):
            missing.append("lua-socket")
        if shutil.which("sievec") is None and not os.access("/usr/bin/sievec", os.X_OK):
            missing.append("sievec (dovecot-sieve)")
        if missing:
            raise ConfigError(f"IMAP needs Dovecot, which is not installed here ({', '.join(missing)} missing): "
                              f"`{INSTALL}` (`make run` does), or set imap.enabled = false",
                              file=str(self.settings.source) if self.settings.source else None, key="imap.enabled")

    def _write_config(self, *, force_sieve: bool = False) -> list[Path]:
        """Write the files, compile changed Sieve scripts, and have Dovecot check the result. Raises
        ConfigError when Dovecot refuses it (its own message)."""
        assert self.mail_user is not None
        files = dovecot_config.render(self.settings, self.layout, self.mail_user)
        changed = dovecot_config.write(files)
        self._run_checked(["/usr/bin/doveconf" if os.path.exists("/usr/bin/doveconf") else "doveconf",
                           "-c", str(self.layout.config), "-n"], "Dovecot refuses the configuration we wrote")
        for path in files:
            if path.suffix == ".sieve" and (force_sieve or path in changed or not path.with_suffix(".svbin").exists()):
                self._run_checked([shutil.which("sievec") or "/usr/bin/sievec", "-c", str(self.layout.config),
                                   str(path)], f"Sieve refuses {path.name}")
                os.chmod(path.with_suffix(".svbin"), 0o644)
        return changed

    def _run_checked(self, cmd: list[str], what: str) -> None:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            detail = (res.stderr or res.stdout).strip().splitlines()
            raise ConfigError(f"{what}: {detail[-1] if detail else res.returncode} ({self.layout.config})",
                              key="imap")

    # -- running -----------------------------------------------------------------------------------------

    async def _start_sockets(self) -> None:
        assert self.mail_user is not None
        user, s = self.mail_user, self.settings
        store = MaildirStore(s.path(s.mailbox.root), default_quota_bytes=s.mailbox.default_quota_bytes,
                             junk_folder=s.mailbox.junk_folder)
        if user.rootless:
            internal = (user.uid, user.gid)
        else:
            entry = _system_user(dovecot_config.DEBIAN_INTERNAL_USER)
            internal = (entry.uid, entry.gid)
        self.auth = AuthSocketServer(self.layout.auth_socket, LoginGuard(self.directory, self.throttle), store, user,
                                     owner=internal)
        await self.auth.start()
        self.learn = LearnSocketServer(self.layout.base_dir / DovecotLayout.LEARN_DIR, self.model_store,
                                       is_our_user=self.directory.is_active, per_hour=s.imap.learn.max_per_hour,
                                       max_size=s.smtp.max_message_size + 1024 * 1024, owner=(user.uid, user.gid),
                                       names=(dovecot_config.LEARN_SPAM, dovecot_config.LEARN_HAM))
        await self.learn.start()

    async def _start_dovecot(self) -> None:
        self.proc = await self._spawn()
        recent: list[str] = []
        self._tasks.append(asyncio.create_task(self._forward_log(self.proc, recent), name="imap-dovecot-log"))
        await self._wait_listening(self.proc, recent)
        log.info("imap: Dovecot started (pid %d)", self.proc.pid)
        self._tasks.append(asyncio.create_task(self._supervise(), name="imap-dovecot-supervisor"))

    async def _wait_listening(self, proc: asyncio.subprocess.Process, recent: list[str]) -> None:
        targets = [_host_port(a) for a in [*self.settings.imap.listen, *self.settings.imap.listen_tls]]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                await asyncio.sleep(0.2)  # the last log lines
                why = next((r for r in reversed(recent) if "Fatal" in r or "Error" in r), recent[-1] if recent else "")
                raise ConfigError(f"Dovecot exited at start ({proc.returncode}): {why}", key="imap.listen")
            if all([await _accepts(host, port) for host, port in targets]) and proc.returncode is None:
                await asyncio.sleep(0.2)
                if proc.returncode is None:  # not another instance's listeners while ours fails
                    return
                continue
            await asyncio.sleep(0.1)
        raise ConfigError(f"Dovecot did not listen on {', '.join(f'{h}:{p}' for h, p in targets)} within "
                          f"{START_TIMEOUT:.0f}s", key="imap.listen")

    async def _forward_log(self, proc: asyncio.subprocess.Process, recent: list[str]) -> None:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip()
            recent.append(text)
            del recent[:-20]
            level = next((lvl for word, lvl in _LEVELS.items() if f": {word}: " in text or text.startswith(f"{word}: ")),
                         logging.INFO)
            dovecot_log.log(level, "%s", text)

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("imap: Dovecot exited on its own (%s); starting it again in %.0fs", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                self.proc = await self._spawn()
                recent: list[str] = []
                self._tasks.append(asyncio.create_task(self._forward_log(self.proc, recent), name="imap-dovecot-log"))
                await self._wait_listening(self.proc, recent)
                self.restarts += 1
                delay = 1.0
                log.warning("imap: Dovecot started again (pid %d)", self.proc.pid)
            except (ConfigError, OSError) as exc:
                log.error("imap: Dovecot did not start again: %s", exc)

    async def _stop_dovecot(self, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the master stops its children and closes every session
        deadline = time.monotonic() + timeout
        try:
            # The master exits first, and the processes it leaves (an open session's imap and imap-login,
            # anvil, log, stats) notice only about 10 s later: they get the SIGTERM from us at once.
            while proc.returncode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.returncode is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            if proc.stdout is not None:  # end of file once every process holding Dovecot's log output is gone
                await asyncio.wait_for(proc.stdout.read(), max(deadline - time.monotonic(), 0.1))
            await asyncio.wait_for(proc.wait(), max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            log.error("imap: Dovecot did not stop within %.0fs; killing its process group", timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def _remove_stale_master(self) -> None:
        """A master.pid left by a Dovecot that is gone is removed. A Dovecot still running on our configuration
        (left by a server that was killed before it could stop it) is stopped: it is ours, and it holds the
        listeners. Any other live process there means another instance, which Dovecot refuses itself."""
        pid_file = self.layout.pid_file
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(pid_file.read_text().strip())
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                pid_file.unlink()
                return
            if str(self.layout.config).encode() in cmdline:
                log.warning("imap: stopping Dovecot %d, left running on %s by an earlier server", pid,
                            self.layout.config)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(FileNotFoundError):
                    pid_file.unlink()

    async def _spawn(self) -> asyncio.subprocess.Process:
        await asyncio.to_thread(self._remove_stale_master)
        return await asyncio.create_subprocess_exec(
            self.settings.imap.dovecot, "-F", "-c", str(self.layout.config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends Dovecot's master SIGTERM when our process dies, however
    it dies (PR_SET_PDEATHSIG), so no Dovecot is left holding the listeners."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _system_user(name: str) -> MailUser:
    """A system user of Debian's dovecot-core (as a MailUser, for the path checks)."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"the system user {name!r} of Debian's dovecot-core is missing: reinstall it ({INSTALL})",
                          key="imap.enabled") from None
    return MailUser(name, entry.pw_uid, entry.pw_gid, rootless=False)


__all__ = ["INSTALL", "DovecotService"]
