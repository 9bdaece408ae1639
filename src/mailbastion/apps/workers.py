"""SMTP acceptor processes: `server.workers` > 1 spreads the gateway's SMTP work over several cores.

The parent binds the listening sockets, checks the configuration once, then forks the acceptors
before it starts its own event loop (forking a running loop is unsafe). Each acceptor builds its own
pipeline, features, spool writer and recipient map and accepts on the shared sockets; the kernel
spreads connections among them. The parent keeps the single queue manager (the only scheduler,
Postfix's qmgr), which finds the acceptors' commits by scanning `incoming/`, and the MDA.

    sockets = bind_gateway_sockets(settings)
    acceptors = start_acceptors(settings, sockets, settings.server.workers)
    ...                       # the parent runs the queue manager (apps/role_gateway.py)
    await acceptors.stop()    # SIGTERM to each: it drains, then exits
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType

from mailbastion.apps.pipeline import PolicyStack
from mailbastion.apps.privileges import drop_capabilities
from mailbastion.apps.process import stop_with_parent
from mailbastion.config import Settings, load_settings
from mailbastion.smtp.listeners import bind, install_uvloop

log = logging.getLogger("mailbastion.workers")


@dataclass(frozen=True)
class GatewaySockets:
    smtp: list[socket.socket]
    smtps: list[socket.socket] = field(default_factory=list)


def bind_gateway_sockets(settings: Settings) -> GatewaySockets:
    return GatewaySockets(bind(settings.smtp.listen), bind(settings.smtp.implicit_tls_listen))


def preload(stack: PolicyStack) -> None:
    """Load now, in the parent, what the checks would load on their first message (the spam model,
    look-alike tables...), so the acceptors forked next share those pages instead of each loading its
    own. Features that load at build time (YARA rules) already did."""
    for feature in stack.features:
        warm = getattr(feature, "preload", None)
        if warm is not None:
            warm()


async def _acceptor(settings: Settings, sockets: GatewaySockets, ready: EventType) -> None:
    from mailbastion.apps.features import gateway_services
    from mailbastion.apps.gateway import build_gateway
    from mailbastion.apps.selfcheck import write_report
    from mailbastion.spool.writer import Spool

    services = gateway_services(settings)
    stack = PolicyStack(services)
    await stack.start()
    gateway = build_gateway(settings, pipeline=stack.pipeline, recipients=services.recipients,  # type: ignore[arg-type]
                            spool=Spool.from_settings(settings), quarantine=services.quarantine)
    await gateway.start(sockets=sockets.smtp, tls_sockets=sockets.smtps)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    stop_with_parent(stopping.set)

    async def reload() -> None:
        try:
            new = load_settings(settings.source)
        except Exception as exc:  # noqa: BLE001 - a bad edit keeps the running configuration
            log.error("acceptor %d: reload refused: %s", os.getpid(), exc)
            return
        try:
            pipeline = await stack.reload(new)
        except Exception as exc:  # noqa: BLE001
            log.error("acceptor %d: reload of the checks refused, keeping the running ones: %s", os.getpid(), exc)
            pipeline = stack.pipeline
        gateway.reload(new, pipeline)

    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: write_report(settings, "gateway"))
    ready.set()  # accepting, and every signal has its handler: the parent may announce the server ready
    await stopping.wait()
    await gateway.stop(30.0)
    await stack.stop()


def quiet_until_ready() -> None:
    """A child's signals until it has its handlers: ^C is the parent's to turn into SIGTERM; a SIGHUP
    or SIGUSR2 forwarded while it starts must not kill it (their default action) but is dropped."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


def _child(settings: Settings, sockets: GatewaySockets, ready: EventType) -> None:
    quiet_until_ready()
    drop_capabilities()  # the sockets are bound (inherited): an acceptor needs no capability at all
    install_uvloop()
    try:
        asyncio.run(_acceptor(settings, sockets, ready))
    except Exception:
        log.exception("acceptor %d failed", os.getpid())
        raise SystemExit(1) from None


class Acceptors:
    """Child processes of one kind (the SMTP acceptors, or the MDA's own process)."""

    def __init__(self, procs: list[BaseProcess], ready: list[EventType] | None = None) -> None:
        self.procs = procs
        self._ready = ready or []

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until every child says it serves (bounded); False when one did not in time or died."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for event in self._ready:
            while not event.is_set():
                if loop.time() > deadline or self.alive() < len(self.procs):
                    return False
                await asyncio.to_thread(event.wait, 0.2)
        return True

    def signal(self, signum: int) -> None:
        for p in self.procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.is_alive())

    async def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM: each acceptor drains its sessions and exits; SIGKILL whatever is left after `timeout`."""
        self.signal(signal.SIGTERM)

        def join() -> None:
            for p in self.procs:
                p.join(timeout)
                if p.is_alive():
                    log.error("acceptor %s did not stop in %.0fs; killed", p.pid, timeout)
                    p.kill()
                    p.join(5)

        await asyncio.to_thread(join)


def fork_process(target: Callable[..., None], args: tuple[object, ...], name: str) -> BaseProcess:
    """Start `target(*args)` in a forked child, sharing the parent's pages with it for as long as possible.

    A forked child shares every page of the parent until one side writes to it. CPython's cycle collector
    writes to every object it tracks (its `gc_refs` field) each time it examines a generation, so without
    care the first collections in a child copy most of the pages holding the parent's objects (modules,
    settings, the spam model's tables, the rule sets): each acceptor then pays for its own copy of what
    the parent loaded. `gc.freeze()` right before the fork (CPython's documented recipe) moves everything
    alive now into a permanent generation the collector never examines, in the parent and the child alike:
    with `server.workers = 2` and every check on, the tree's PSS after 2,000 messages of mixed traffic went
    from 455-464 to 379-383 MB (docs/performance.md). What is frozen is the start-up state, alive for the life of
    the process; objects freed by reference counting are still freed, only cycles among them (a reload's
    leftovers) are no longer collected."""
    gc.collect()  # leave no garbage to be frozen with the rest
    gc.freeze()
    p = multiprocessing.get_context("fork").Process(target=target, args=args, name=name, daemon=False)
    p.start()
    return p


def start_acceptors(settings: Settings, sockets: GatewaySockets, count: int) -> Acceptors:
    ctx = multiprocessing.get_context("fork")
    procs: list[BaseProcess] = []
    ready: list[EventType] = []
    for i in range(count):
        event = ctx.Event()
        procs.append(fork_process(_child, (settings, sockets, event), f"mailbastion-smtp-{i}"))
        ready.append(event)
    return Acceptors(procs, ready)
