"""SMTP acceptor processes: `server.workers` > 1 spreads the gateway's SMTP work over several cores.

The parent binds the listening sockets, checks the configuration once, then forks the acceptors
before it starts its own event loop (forking a running loop is unsafe). Each acceptor builds its own
pipeline, features, spool writer and recipient map and accepts on the shared sockets; the kernel
spreads connections among them. The parent keeps the single queue manager (the only scheduler,
Postfix's qmgr), which finds the acceptors' commits by scanning `incoming/`, and the MDA.

    sockets = bind_gateway_sockets(settings)
    acceptors = start_acceptors(settings, sockets, settings.server.workers)
    ...                       # the parent runs Runtime(settings, role, acceptors=acceptors)
    await acceptors.stop()    # SIGTERM to each: it drains, then exits
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from mailbastion.config import Settings, load_settings
from mailbastion.smtp.listeners import bind, install_uvloop

log = logging.getLogger("mailbastion.workers")


@dataclass(frozen=True)
class GatewaySockets:
    smtp: list[socket.socket]
    smtps: list[socket.socket] = field(default_factory=list)


def bind_gateway_sockets(settings: Settings) -> GatewaySockets:
    return GatewaySockets(bind(settings.smtp.listen), bind(settings.smtp.implicit_tls_listen))


async def _acceptor(settings: Settings, sockets: GatewaySockets) -> None:
    from mailbastion.apps.features import gateway_services
    from mailbastion.apps.gateway import build_gateway
    from mailbastion.apps.pipeline import build_pipeline
    from mailbastion.spool.writer import Spool

    services = gateway_services(settings)
    pipeline, features = build_pipeline(services)
    for f in features:
        await f.start()
    gateway = build_gateway(settings, pipeline=pipeline, recipients=services.recipients,  # type: ignore[arg-type]
                            spool=Spool.from_settings(settings), quarantine=services.quarantine)
    await gateway.start(sockets=sockets.smtp, tls_sockets=sockets.smtps)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)

    def reload() -> None:
        try:
            new = load_settings(settings.source)
            services.settings = new
            pipeline_new, _ = build_pipeline(services, features)
            gateway.reload(new, pipeline_new)
        except Exception as exc:  # noqa: BLE001 - a bad edit keeps the running configuration
            log.error("acceptor %d: reload refused: %s", os.getpid(), exc)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stopping.wait()
    await gateway.stop(30.0)
    for f in features:
        await f.stop()


def _child(settings: Settings, sockets: GatewaySockets) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns ^C into SIGTERM for us
    install_uvloop()
    try:
        asyncio.run(_acceptor(settings, sockets))
    except Exception:
        log.exception("acceptor %d failed", os.getpid())
        raise SystemExit(1) from None


class Acceptors:
    def __init__(self, procs: list[BaseProcess]) -> None:
        self.procs = procs

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


def _mda_child(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_uvloop()
    from mailbastion.apps.runtime import Runtime

    async def main() -> None:
        runtime = Runtime(settings, "mda")
        await runtime.start()
        await runtime.run_until_signal()  # SIGTERM drains; SIGHUP reloads its certificates

    try:
        asyncio.run(main())
    except Exception:
        log.exception("MDA process %d failed", os.getpid())
        raise SystemExit(1) from None


def start_mda_process(settings: Settings) -> Acceptors:
    """The MDA in a process of its own (all-in-one with several workers): Maildir writes and directory
    lookups then use another core than the queue manager's."""
    p = multiprocessing.get_context("fork").Process(target=_mda_child, args=(settings,), name="mailbastion-mda")
    p.start()
    return Acceptors([p])


def start_acceptors(settings: Settings, sockets: GatewaySockets, count: int) -> Acceptors:
    ctx = multiprocessing.get_context("fork")
    procs: list[BaseProcess] = []
    for i in range(count):
        p = ctx.Process(target=_child, args=(settings, sockets), name=f"mailbastion-smtp-{i}", daemon=False)
        p.start()
        procs.append(p)
    return Acceptors(procs)
