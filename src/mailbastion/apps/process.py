"""One `mailbastion serve` process: runs a role until a signal. Role-agnostic: it imports no role.

    roles = [InternalRole(settings), GatewayRole(settings)]     # what `cli/serve.py` composes
    prepare_process(settings)                                  # as root: become server.user; metrics on
    await ServerProcess(settings, "all", roles, endpoint=True).run()   # start, serve, drain on SIGTERM

Privileges: `prepare_process` (before the roles fork anything) leaves root for `server.user`, keeping only
the right to bind ports below 1024; `start` drops that too once every listener is bound, in this process
and in each child that runs a ServerProcess (apps/privileges.py). The metrics endpoint (`[metrics] listen`)
is served by the process built with `endpoint=True`, the one `serve` runs; the counters of its child
processes reach it through files (metrics.py).

Signals:
  SIGTERM, SIGINT   drain and stop: the roles stop in the reverse order of their start (the gateway stops
                    taking mail before the MDA stops delivering it)
  SIGHUP            reload: re-read the configuration; keys only a restart applies are named in the log
                    (config/reload.py), the rest is applied by each role; a bad file keeps the running one
  SIGUSR1           log every pending task and where it waits (a server that seems stuck)
  SIGUSR2           self-check: which modules this process (and its children) loaded and which files it
                    holds open, written to `run/selfcheck-<role>-<pid>.json` below data_dir (apps/selfcheck.py)

A child process of a role (an SMTP acceptor, the MDA's own process) that dies stops the whole server: a
supervisor restarts it rather than it running on silently with less.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from mailbastion import metrics
from mailbastion.apps.privileges import drop_capabilities, switch_user
from mailbastion.config import Settings, load_settings, weakened
from mailbastion.config.sections.split import split_hostport
from mailbastion.smtp.listeners import install_uvloop

log = logging.getLogger("mailbastion.runtime")


class Children(Protocol):
    """Processes a role forked (apps/workers.py `Acceptors`)."""

    procs: Sequence[object]

    def alive(self) -> int: ...

    def signal(self, signum: int) -> None: ...


class Role(Protocol):
    """What a role of `serve` is to the process that runs it."""

    name: str

    def prefork(self) -> None:
        """Before any event loop runs: fork the role's child processes (they must not inherit a loop)."""
        ...

    async def start(self) -> list[str]:
        """Start; return lines saying what listens where. Raises ConfigError or OSError to refuse."""
        ...

    async def reload(self, settings: Settings) -> None:
        """SIGHUP with the re-read settings: apply what a reload applies; never raise for a bad part
        (log it and keep the running one)."""
        ...

    async def stop(self, drain_seconds: float) -> None: ...

    def children(self) -> list[Children]:
        """Processes this role forked, watched and signalled by the server process."""
        ...


def setup_logging(settings: Settings) -> None:
    level = getattr(logging, settings.server.log_level.upper())
    handler: logging.Handler
    if settings.server.log_file:
        handler = logging.FileHandler(settings.path(settings.server.log_file))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))  # migrations say nothing useful at start


def prepare_process(settings: Settings) -> None:
    """Before the roles prefork: as root, become `server.user` (ConfigError when it cannot be done); with
    `[metrics] listen`, start counting (in this process and every process forked from it)."""
    switch_user(settings)
    if settings.metrics.listen:
        metrics.enable(settings.path("run") / "metrics")


class ServerProcess:
    def __init__(self, settings: Settings, role: str, roles: Sequence[Role], *, endpoint: bool = False) -> None:
        self.settings = settings
        self.role = role
        self.roles = list(roles)
        self.endpoint = endpoint  # serve the metrics endpoint (the top process only)
        self._endpoint: metrics.Endpoint | None = None
        self._started: list[Role] = []
        self._stopping = asyncio.Event()

    async def start(self) -> list[str]:
        """Start every role in order, then give up every capability (the listeners are bound). On failure
        the roles already started are stopped and the error raised (the command line turns it into one
        line)."""
        for item in weakened(self.settings):
            log.warning("config.weakened %s", item)
        lines: list[str] = []
        try:
            lines.extend(self._start_endpoint())
            for role in self.roles:
                lines.extend(await role.start())
                self._started.append(role)
        except BaseException:
            await self.stop(0)
            raise
        drop_capabilities()
        return lines

    def _start_endpoint(self) -> list[str]:
        listen = self.settings.metrics.listen
        if not (self.endpoint and listen and metrics.is_enabled()):
            return []
        host, port = split_hostport(listen)
        self._endpoint = metrics.start_endpoint(host, port)
        return [f"metrics (Prometheus)    http://{listen}/metrics"]

    async def reload(self) -> None:
        """SIGHUP: re-read the configuration file and hand it to every role."""
        from mailbastion.config.reload import restart_needed

        try:
            new = load_settings(self.settings.source)
        except Exception as exc:  # noqa: BLE001 - a bad edit must not take the server down
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        later = restart_needed(self.settings, new)
        if later:
            log.warning("reload: these changed settings apply only after a restart: %s", ", ".join(later))
        self.settings = new
        for role in self._started:
            try:
                await role.reload(new)
            except Exception:  # a role's contract says it does not raise; stay up if one does
                log.exception("reload of the %s role failed; it keeps its running configuration", role.name)
        log.info("configuration reloaded from %s", new.source)

    async def stop(self, drain_seconds: float = 30.0) -> None:
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        for role in reversed(self._started):
            started = time.monotonic()
            try:
                await asyncio.wait_for(role.stop(drain_seconds), timeout=drain_seconds + 10)
            except TimeoutError:
                log.error("stopping the %s role took longer than %.0fs; abandoned", role.name, drain_seconds + 10)
            except Exception as exc:  # noqa: BLE001 - stop everything else regardless
                log.error("stopping the %s role failed: %s", role.name, exc)
            log.debug("stopped the %s role in %.2fs", role.name, time.monotonic() - started)
        self._started.clear()

    def children(self) -> list[Children]:
        return [c for role in self.roles for c in role.children()]

    def selfcheck(self) -> None:
        from mailbastion.apps.selfcheck import write_report

        for children in self.children():
            children.signal(signal.SIGUSR2)
        try:
            path = write_report(self.settings, self.role)
        except OSError as exc:
            log.error("self-check report could not be written: %s", exc)
            return
        log.info("self-check written to %s", path)

    def handle_signals(self) -> None:
        """Install the signal handlers. `serve` calls it before it says it is serving: a SIGUSR2 (or SIGHUP)
        sent as soon as that line appears must find its handler, not the default action, which kills."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload_and_signal()))
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        loop.add_signal_handler(signal.SIGUSR2, self.selfcheck)

    async def run_until_signal(self) -> None:
        self.handle_signals()  # again: harmless when `serve` did it already (a handler replaces the previous)
        stop_with_parent(self._stopping.set)  # the MDA's own process: never outlive `serve`
        watch = asyncio.ensure_future(self._watch_children())
        await self._stopping.wait()
        watch.cancel()
        log.info("draining: no new connections, finishing open transactions")
        await self.stop()
        log.info("stopped")

    async def _reload_and_signal(self) -> None:
        await self.reload()
        for children in self.children():
            children.signal(signal.SIGHUP)  # each child process re-reads the file itself

    async def _watch_children(self) -> None:
        children = self.children()
        while children:
            await asyncio.sleep(1.0)
            if any(c.alive() < len(c.procs) for c in children):
                log.error("a child process (SMTP acceptor or MDA) exited; stopping")
                self._stopping.set()
                return


def stop_with_parent(stop: Callable[[], None]) -> None:
    """In a child process forked by `serve` (acceptor, MDA): call `stop` once the parent is gone, however it
    ended (a failed start, SIGKILL). An orphan would go on accepting mail with no queue manager and hold
    the ports, so the next `serve` could not bind them. Nothing in a process that is not such a child."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    loop = asyncio.get_running_loop()

    def gone() -> None:
        loop.remove_reader(parent.sentinel)
        log.error("process %d: the serve process that started it is gone; stopping", os.getpid())
        stop()

    loop.add_reader(parent.sentinel, gone)  # readable (EOF) once the parent has exited


def dump_tasks() -> None:
    """SIGUSR1: log every pending task and where it waits (for a server that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


__all__ = ["Children", "Role", "ServerProcess", "dump_tasks", "install_uvloop", "prepare_process", "setup_logging",
           "stop_with_parent"]
