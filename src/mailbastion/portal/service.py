"""The portal as a service of `mailbastion serve` (internal and all-in-one roles; never the gateway role).

    portal = PortalService(settings)                 # or PortalService(settings, context=ctx) in tests
    lines = await portal.start()                     # binds [portal] listen, HTTPS, in this event loop
    await portal.reload(settings)                    # SIGHUP: the certificate ([tls] cert, key) re-read
    await portal.stop()

HTTPS only, with the deployment's public certificate through tls_policy (the same context policy as every
listener). uvicorn serves the Starlette app inside our event loop: we bind the socket ourselves (a port in
use refuses the start with OSError, as for every listener) and uvicorn never installs signal handlers (the
server process owns SIGTERM/SIGHUP). Background work: the quarantine index is brought up to date at start,
the dashboard's probes run, expired sessions are purged every 10 minutes, and the daily digest goes out at
`portal.digest_time` (UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Iterator
from typing import Any

from mailbastion.config import Settings
from mailbastion.config.sections.portal import parse_listen
from mailbastion.core.errors import ConfigError

log = logging.getLogger("mailbastion.portal")

__all__ = ["PortalService"]

PURGE_EVERY = 600.0
STARTED_WITHIN = 30.0


def _embedded_server(config: Any) -> Any:
    import uvicorn

    class EmbeddedServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the server process owns the signals
            yield

    return EmbeddedServer(config)


class PortalService:
    def __init__(self, settings: Settings, *, context: Any = None, **context_overrides: Any) -> None:
        self.settings = settings
        self.context = context
        self._overrides = context_overrides
        self.ssl_context: Any = None
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.port: int | None = None

    async def start(self) -> list[str]:
        """Bind and serve; return the line saying where. Raises ConfigError (certificate) or OSError (bind)."""
        import uvicorn

        from mailbastion.portal.app import build_app
        from mailbastion.portal.context import PortalContext
        from mailbastion.tls_policy import server_context_from_settings

        s = self.settings
        self.ssl_context = server_context_from_settings(s)
        self.ssl_context.set_alpn_protocols(["http/1.1"])
        if self.context is None:
            self.context = await asyncio.to_thread(PortalContext.from_settings, s, **self._overrides)
        host, port = parse_listen(s.portal.listen)
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP (with proto 0
        # every response waits out a 40 ms delayed ACK)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(512)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"portal: cannot listen on {s.portal.listen}: {exc.strerror}") from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self.context), log_config=None, access_log=False, server_header=False,
                                date_header=True, lifespan="off", proxy_headers=False, http="h11",
                                timeout_keep_alive=30, timeout_graceful_shutdown=10, limit_concurrency=1000,
                                h11_max_incomplete_event_size=64 * 1024)
        config.load()
        config.ssl = self.ssl_context  # ours, from tls_policy (uvicorn's own loader is bypassed)
        self._server = _embedded_server(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + STARTED_WITHIN
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise ConfigError("the portal stopped while starting (see the log above)")
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError("the portal did not start listening in time")
            await asyncio.sleep(0.02)
        self._background = [asyncio.ensure_future(self._warm_up()), asyncio.ensure_future(self._purge_loop())]
        if s.portal.digest_time:
            self._background.append(asyncio.ensure_future(self._digest_loop(s.portal.digest_time)))
        return [f"portal (HTTPS)          {s.portal.listen}  ({self.context.public_url})"]

    async def _warm_up(self) -> None:
        try:
            added = await asyncio.to_thread(self.context.qindex.sync)
            log.info("portal: quarantine index up to date (%d change(s))", added)
        except Exception:
            log.exception("portal: quarantine index sync failed")
        self.context.measures.refresh_soon()

    async def _purge_loop(self) -> None:
        idle = dt.timedelta(minutes=self.settings.portal.session_idle_minutes)
        while True:
            try:
                gone = await asyncio.to_thread(self.context.store.purge_sessions, idle=idle)
                if gone:
                    log.info("portal: %d expired session(s) removed", gone)
            except Exception:
                log.exception("portal: session purge failed")
            await asyncio.sleep(PURGE_EVERY)

    async def _digest_loop(self, at: str) -> None:
        from mailbastion.portal.digest import next_run, send_digests

        while True:
            now = dt.datetime.now(dt.UTC)
            await asyncio.sleep((next_run(at, now) - now).total_seconds())
            try:
                await send_digests(self.context)
            except Exception:
                log.exception("portal: daily quarantine digest failed")

    async def reload(self, settings: Settings) -> None:
        """New connections use the re-read certificate; a pair that does not load is refused and the running
        one stays. Other [portal] keys apply after a restart."""
        from mailbastion.tls_policy import reload_server_context

        if self.ssl_context is None:
            return
        try:
            reload_server_context(self.ssl_context, settings)
        except ConfigError as exc:
            log.error("portal certificate reload refused, keeping the running one: %s", exc)

    async def stop(self, drain_seconds: float = 10.0) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background = []
        if self.context is not None:
            # First, so that a stop is not held up by a refresh: its `av status` child ends. The closed board starts
            # no other refresh, so a dashboard request served before the server stops shows the last results.
            await self.context.measures.close()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            done, _ = await asyncio.wait({self._task}, timeout=min(1.0, drain_seconds))
            if not done:
                # An idle keep-alive connection closes with a TLS close_notify that a pooled client never
                # answers; uvicorn would wait for it until its graceful timeout. Requests in flight continue.
                for conn in list(self._server.server_state.connections):
                    cycle = getattr(conn, "cycle", None)
                    transport = getattr(conn, "transport", None)
                    if transport is not None and (cycle is None or cycle.response_complete):
                        # a transport already closing has dropped its SSL protocol, and Python 3.11.2's
                        # asyncio then fails in abort(): it is gone either way
                        with contextlib.suppress(AttributeError):
                            transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, drain_seconds + 5)
        self._server = self._task = None
        if self.context is not None:
            self.context.qindex.close()
