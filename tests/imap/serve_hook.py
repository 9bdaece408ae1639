"""TEMPORARY: runs Dovecot under the real `mailbastion serve` until the roles list it themselves.

    python tests/imap/serve_hook.py serve -c FILE [--role all|internal]

`install()` adds a DovecotService (a role of its own, see imap/dovecot.py) after the internal role in
`apps/role_internal.roles` and `apps/role_all.roles`, exactly what docs/notes-imap-wiring.patch writes
into those two files. tests/imap/test_serve.py runs serve through it while apps/ belongs to other
branches; the lead applies the patch and deletes this file and its one use in that test. (It lives in
tests/, not in src/: the imap package must not import apps/.)
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from mailbastion.apps import role_all, role_internal
    from mailbastion.config import Settings
    from mailbastion.imap.dovecot import DovecotService

    def with_imap(roles: Any) -> Any:
        def composed(settings: Settings) -> list[Any]:
            listed = list(roles(settings))
            if settings.imap.enabled:
                listed.insert(1, DovecotService(settings))  # after the internal role: stops before the MDA
            return listed

        return composed

    role_internal.roles = with_imap(role_internal.roles)  # type: ignore[assignment]
    role_all.roles = with_imap(role_all.roles)  # type: ignore[assignment]


def main() -> None:
    import sys

    sys.argv[0] = "mailbastion"
    install()
    from mailbastion.cli import main as cli_main

    cli_main()


__all__ = ["install", "main"]


if __name__ == "__main__":
    main()
