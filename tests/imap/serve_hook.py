"""TEMPORARY: runs Dovecot under the real `mailbastion serve` until apps/runtime.py does it itself.

    python tests/imap/serve_hook.py serve -c FILE [--role all|mda]

`install()` wraps `Runtime.start`, `Runtime.reload` and `Runtime.stop` so that the internal (mda) and
all-in-one roles start a DovecotService after the MDA, reload it on SIGHUP and stop it before the MDA.
It exists so that tests/imap/test_serve.py proves the service under `serve` while apps/runtime.py belongs
to another branch; the lead moves these three calls into Runtime (see docs/notes-imap.md) and deletes
this file and its one use in that test. (It lives in tests/, not in src/: the imap package must not
import apps/.)
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from mailbastion.apps.runtime import Runtime
    from mailbastion.imap.dovecot import DovecotService

    start, reload, stop = Runtime.start, Runtime.reload, Runtime.stop

    async def start_with_imap(self: Any) -> list[str]:
        lines = await start(self)
        # Dovecot runs where the MDA runs: in this process, or in the MDA's own process (workers > 1), whose
        # Runtime(role="mda") has no mda_process of its own.
        if self.role in ("all", "mda") and self.mda_process is None and self.settings.imap.enabled:
            self.imap = DovecotService(self.settings)
            lines += await self.imap.start()
        return lines

    async def reload_with_imap(self: Any) -> None:
        await reload(self)
        if getattr(self, "imap", None) is not None:
            await self.imap.reload(self.settings)

    async def stop_with_imap(self: Any, drain_seconds: float = 30.0) -> None:
        if getattr(self, "imap", None) is not None:
            await self.imap.stop()
        await stop(self, drain_seconds)

    Runtime.start = start_with_imap  # type: ignore[method-assign]
    Runtime.reload = reload_with_imap  # type: ignore[method-assign]
    Runtime.stop = stop_with_imap  # type: ignore[method-assign]


def main() -> None:
    import sys

    sys.argv[0] = "mailbastion"
    install()
    from mailbastion.cli import main as cli_main

    cli_main()


__all__ = ["install", "main"]


if __name__ == "__main__":
    main()
