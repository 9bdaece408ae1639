"""What the lifecycle scheduler last did, for `mailbastion audit` (measure 6) and the portal: the time of
its last check of dates and of its last LDAP sync, in `state/lifecycle.json` below data_dir.

    record(settings, checked=True)                 # the scheduler, after each check that worked
    record(settings, ldap_synced=True)             # ... after each LDAP sync that worked
    record(settings, ldap_error="LDAP unreachable")
    status = read(settings)                        # LifecycleStatus (None fields when never)

The file is replaced whole (private_files.write_private: a reader never sees half of it); a missing or
unreadable file reads as "never", which the audit reports as a scheduler that is not running.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbastion.private_files import write_private

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = ["STATUS_FILE", "LifecycleStatus", "read", "record"]

STATUS_FILE = "state/lifecycle.json"


@dataclass(frozen=True, slots=True)
class LifecycleStatus:
    checked_at: dt.datetime | None = None
    ldap_synced_at: dt.datetime | None = None
    ldap_error: str = ""


def _path(settings: Settings) -> Path:
    return settings.path(STATUS_FILE)


def _when(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def read(settings: Settings) -> LifecycleStatus:
    try:
        data = json.loads(_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return LifecycleStatus()
    if not isinstance(data, dict):
        return LifecycleStatus()
    return LifecycleStatus(_when(data.get("checked_at")), _when(data.get("ldap_synced_at")),
                           str(data.get("ldap_error") or ""))


def record(settings: Settings, *, now: dt.datetime | None = None, checked: bool = False,
           ldap_synced: bool = False, ldap_error: str | None = None) -> None:
    """Update the file with what just happened (the other fields kept). Raises OSError."""
    now = now or dt.datetime.now(dt.UTC)
    old = read(settings)
    checked_at = now if checked else old.checked_at
    synced_at = now if ldap_synced else old.ldap_synced_at
    error = "" if ldap_synced else (old.ldap_error if ldap_error is None else ldap_error)
    data = {"checked_at": checked_at.isoformat() if checked_at else None,
            "ldap_synced_at": synced_at.isoformat() if synced_at else None, "ldap_error": error}
    write_private(_path(settings), json.dumps(data).encode())
