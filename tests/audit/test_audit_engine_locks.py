"""Opening the audit database again in a process that already uses it must not drop that process's SQLite
locks (POSIX: closing any descriptor of a file releases all the process's locks on it). Before the fix,
`make_engine` opened and closed the file every time: another process writing then believed it was alone,
checkpointed and removed the WAL on close, and this process's next commits went to a removed file (lost)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mailbastion.audit.database import make_engine
from mailbastion.audit.log import AuditLog


def _other_process(url: str, code: str) -> str:
    return subprocess.run([sys.executable, "-c", f"from mailbastion.audit.log import AuditLog\nlog = AuditLog({url!r})\n{code}"],
                          capture_output=True, text=True, check=True, timeout=120).stdout


def test_a_second_engine_keeps_the_first_ones_commits_visible(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog(url)
    log.record("first", actor="t", subject="s")
    make_engine(url).dispose()  # a second component of this process opens the same database
    _other_process(url, "log.record('other', actor='t', subject='s')")  # writes, closes (checkpoint)
    log.record("after", actor="t", subject="s")  # this process again
    seen = _other_process(url, "print(','.join(e.action for e in log.events(newest_first=False)))")
    assert seen.strip() == "first,other,after"
