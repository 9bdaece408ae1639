"""The quarantine: a store that holds messages with their verdict, and audited release/delete."""

from mailbastion.quarantine.release import QuarantineRelease, ReleaseRefused, open_audit_log
from mailbastion.quarantine.store import QuarantineEntry, QuarantineStore, UnknownQuarantineId

__all__ = [
    "QuarantineEntry",
    "QuarantineRelease",
    "QuarantineStore",
    "ReleaseRefused",
    "UnknownQuarantineId",
    "open_audit_log",
]
