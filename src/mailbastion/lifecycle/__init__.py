"""Accounts over time (issue 13): start and end dates applied on time, leavers' mail, archives and
deletions, and the people import.

    archive.py       a leaver's Maildir as a tarball with a SHA-256 checksum file; verification
    transitions.py   what each date does (start, leave, forward end, archive, delete), each step audited
    scheduler.py     LifecycleScheduler: the internal role's check every minute
    people.py        `mailbastion people import FILE.csv`: the HR export's difference, then applied
"""

from __future__ import annotations

__all__: list[str] = []
