"""`[lifecycle]`: accounts over time (issue 13): start and end dates applied by the internal role's
scheduler, what inbound mail for a leaver gets, archive, retention and the reservation of a used address."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mailbastion.config.sections.base import Section


class LifecycleSection(Section):
    enabled: bool = True  # the scheduler in the internal role
    check_interval_seconds: float = Field(60.0, gt=0, le=3600)  # dates are applied within one interval
    # Inbound mail for a leaver: "refuse" answers 550 5.1.1 naming the successor (when there is one);
    # "forward" delivers it to the successor for `forward_days`, then refuses.
    leaver_policy: Literal["refuse", "forward"] = "refuse"
    forward_days: int = Field(30, ge=0, le=3650)
    # After leaving, the mailbox is exported to archive_dir (Maildir tarball + SHA-256 file) and removed;
    # the archive is kept retention_days, then deleted with the account; the address stays reserved
    # reserve_days after that before `account add` may give it to someone else.
    archive_after_days: int = Field(30, ge=0, le=3650)
    archive_dir: str = "archive"  # relative paths are below data_dir; created 0700
    retention_days: int = Field(365, ge=0, le=36500)
    reserve_days: int = Field(365, ge=0, le=36500)
    # TESTING AID, never in production: a file holding seconds added to "now" (core/clock.py OffsetClock).
    testing_clock_offset_file: str = ""

    def weakened(self) -> list[str]:
        if self.testing_clock_offset_file:
            return [f"lifecycle.testing_clock_offset_file = {self.testing_clock_offset_file!r} (a testing aid: "
                    "'now' is moved by that file)"]
        return []


__all__ = ["LifecycleSection"]
