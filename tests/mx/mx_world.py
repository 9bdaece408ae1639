"""(A uniquely named module, not conftest, so test modules can import it.)

Remote MXes for flow tests that drive a real `mailbastion serve` child process: aiosmtpd sinks
(`testing/mx_sink.py`) on 127.0.0.N, served by an event loop in a thread of the test process (the test
itself is synchronous: it waits on the child process and on files).

    with SinkThread() as sinks:
        sink = sinks.start("mx.remote.test", "127.0.0.2", port, cert)
        sinks.wait(lambda: len(sink.received) == 1)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from mailbastion.testing.certificates import Issued
from mailbastion.testing.mx_sink import MxSink

T = TypeVar("T")


class SinkThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sinks", daemon=True)
        self.sinks: list[MxSink] = []

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for sink in self.sinks:
            self.run(sink.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, hostname: str, ip: str, port: int, cert: Issued | None, **kw: bool) -> MxSink:
        sink = self.run(MxSink.start(ip, port, cert.chain_path if cert else None, cert.key_path if cert else None,
                                     hostname=hostname, **kw))
        self.sinks.append(sink)
        return sink

    @staticmethod
    def wait(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met within {timeout}s")
            time.sleep(0.05)
