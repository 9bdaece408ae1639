"""TLS-RPT (RFC 8460): every outbound session's result, counted per day and policy domain, in SQLite.

    store = TlsRptStore(settings.path("tlsrpt.db"))
    store.record(req.report, result_type=None)                         # a successful session
    store.record(req.report, result_type="certificate-expired", sending_ip="192.0.2.1",
                 receiving_mx="mx.example.org", receiving_ip="198.51.100.5", detail="...")
    store.days_pending()                    -> ["2026-05-01", ...]   days with sessions not yet reported
    store.sessions("2026-05-01")            -> [DaySessions(policy_domain, policy, successes, failures)]

Counters, not a row per session: one row per (day, domain, policy, result type, sending IP, MX, HELO,
receiving IP), incremented in place (an UPSERT in one transaction, so a crash loses at most the session
being written). Days are UTC, as RFC 8460 §4.4's date-range is. The file is created 0600.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mailbastion.outbound.requirement import ReportPolicy
from mailbastion.private_files import create_private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    day TEXT NOT NULL, policy_domain TEXT NOT NULL, policy TEXT NOT NULL, result_type TEXT NOT NULL,
    sending_ip TEXT NOT NULL, receiving_mx TEXT NOT NULL, receiving_helo TEXT NOT NULL,
    receiving_ip TEXT NOT NULL, detail TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain, policy, result_type, sending_ip, receiving_mx, receiving_helo, receiving_ip)
);
CREATE TABLE IF NOT EXISTS sent (
    day TEXT NOT NULL, policy_domain TEXT NOT NULL, rua TEXT NOT NULL, report_id TEXT NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (day, policy_domain, rua)
);
"""


@dataclass(frozen=True, slots=True)
class FailureDetail:
    """RFC 8460 §4.4 failure-details entry."""

    result_type: str
    sending_ip: str
    receiving_mx: str
    receiving_helo: str
    receiving_ip: str
    count: int
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"result-type": self.result_type, "failed-session-count": self.count}
        for key, value in (("sending-mta-ip", self.sending_ip), ("receiving-mx-hostname", self.receiving_mx),
                           ("receiving-mx-helo", self.receiving_helo), ("receiving-ip", self.receiving_ip),
                           ("additional-information", self.detail)):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class DaySessions:
    """One policy's sessions to one policy domain on one day."""

    policy_domain: str
    policy: dict[str, object]
    successes: int
    failures: tuple[FailureDetail, ...] = field(default=())

    @property
    def failure_count(self) -> int:
        return sum(f.count for f in self.failures)


def utc_day(ts: float | None = None) -> str:
    return dt.datetime.fromtimestamp(time.time() if ts is None else ts, dt.UTC).strftime("%Y-%m-%d")


class TlsRptStore:
    """Thread-safe; each call opens its own short transaction."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        create_private_file(path)
        # One connection for the life of the store: closing the last connection of a WAL database
        # checkpoints it with an fsync, which cost ~20 ms of blocked event loop per recorded session.
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        # Counters, written from the event loop once per session: WAL without an fsync per commit
        # (synchronous=NORMAL) keeps that write short; a power cut may lose the last few counts.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(self, policy: ReportPolicy, *, result_type: str | None, sending_ip: str = "",
               receiving_mx: str = "", receiving_helo: str = "", receiving_ip: str = "", detail: str = "") -> None:
        """Count one session (result_type None: a success). Details are kept for failures only."""
        if result_type is None:
            sending_ip = receiving_mx = receiving_helo = receiving_ip = detail = ""
        with self._db() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,1) ON CONFLICT (day, policy_domain, policy, "
                "result_type, sending_ip, receiving_mx, receiving_helo, receiving_ip) DO UPDATE SET "
                "count = count + 1, detail = excluded.detail",
                (utc_day(self.clock()), policy.policy_domain, json.dumps(policy.as_json(), sort_keys=True),
                 result_type or "", sending_ip, receiving_mx, receiving_helo, receiving_ip, detail[:500]))

    def sessions(self, day: str) -> list[DaySessions]:
        with self._db() as db:
            rows = db.execute("SELECT policy_domain, policy, result_type, sending_ip, receiving_mx, receiving_helo, "
                              "receiving_ip, detail, count FROM sessions WHERE day = ? ORDER BY policy_domain, "
                              "policy, result_type", (day,)).fetchall()
        grouped: dict[tuple[str, str], tuple[int, list[FailureDetail]]] = {}
        for domain, policy, result, s_ip, mx, helo, r_ip, detail, count in rows:
            ok, fails = grouped.get((domain, policy), (0, []))
            if result:
                fails.append(FailureDetail(result, s_ip, mx, helo, r_ip, count, detail))
            else:
                ok += count
            grouped[(domain, policy)] = (ok, fails)
        return [DaySessions(d, json.loads(p), ok, tuple(f)) for (d, p), (ok, f) in grouped.items()]

    def days_pending(self, before: str | None = None) -> list[str]:
        """Days with recorded sessions before `before` (default today, UTC) that have no sent report yet
        for some domain."""
        before = before or utc_day(self.clock())
        with self._db() as db:
            rows = db.execute("SELECT DISTINCT s.day FROM sessions s WHERE s.day < ? AND NOT EXISTS (SELECT 1 "
                              "FROM sent t WHERE t.day = s.day AND t.policy_domain = s.policy_domain) ORDER BY 1",
                              (before,)).fetchall()
        return [r[0] for r in rows]

    def was_sent(self, day: str, domain: str, rua: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM sent WHERE day=? AND policy_domain=? AND rua=?",
                              (day, domain, rua)).fetchone() is not None

    def mark_sent(self, day: str, domain: str, rua: str, report_id: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO sent VALUES (?,?,?,?,?)",
                       (day, domain, rua, report_id, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))

    def prune(self, keep_days: int) -> int:
        """Forget sessions (and send marks) older than `keep_days`; returns the rows removed."""
        cutoff = utc_day(self.clock() - keep_days * 86400)
        with self._db() as db:
            n = db.execute("DELETE FROM sessions WHERE day < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM sent WHERE day < ?", (cutoff,))
        return int(n)


__all__ = ["DaySessions", "FailureDetail", "TlsRptStore", "utc_day"]
