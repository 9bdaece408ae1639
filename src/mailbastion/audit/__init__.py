"""The audit log: a tamper-evident, hash-chained record of every admin and lifecycle change, in a database
of its own (`[audit] url`; by default `audit.db` below data_dir, created 0600).

    chain.py      records, their hash, and the walk that verifies them (pure)
    models.py     the two tables (records and head)
    database.py   engines, write transactions, the audit schema's own Alembic migrations
    log.py        AuditLog: record, append, record_change / not_committed, events, head, verify
    transfer.py   moving an existing chain in verbatim (the directory's audit tables, on upgrade)

The audit package imports nothing else of ours: the directory records its changes through it (directory →
audit, never back), and so does the quarantine, on hosts that never open the directory database.
Names load lazily (PEP 562), so importing `mailbastion.audit.chain` does not load SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.audit.chain import GENESIS, AuditEvent, VerifyResult, canonical_details, record_hash
    from mailbastion.audit.log import NOT_COMMITTED, AuditLog, AuditReceipt
    from mailbastion.audit.transfer import AuditChainConflict

_WHERE = {
    "GENESIS": "chain", "AuditEvent": "chain", "VerifyResult": "chain", "canonical_details": "chain",
    "record_hash": "chain",
    "NOT_COMMITTED": "log", "AuditLog": "log", "AuditReceipt": "log",
    "AuditChainConflict": "transfer",
}

__all__ = ["GENESIS", "NOT_COMMITTED", "AuditChainConflict", "AuditEvent", "AuditLog", "AuditReceipt",
           "VerifyResult", "canonical_details", "record_hash"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
