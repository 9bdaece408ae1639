"""A real clamd for tests: the Debian daemon, as the current user, on a unix socket in a temp dir.

    with ClamdTestServer(tmp_path) as clamd:          # skips the test when clamd is not installed
        scanner = ClamdScanner(socket_path=clamd.socket_path)
        clamd.stop(); ...; clamd.start()              # clamd down mid-run, then back
        clamd.write_database(age=timedelta(days=3))   # stale signatures, then clamd.reload()
        clamd.write_local_database()                  # .ndb/.hdb only: VERSION carries no date

The signature database is made here, at test time (freshclam cannot reach the internet in tests
and a real site runs freshclam on schedule): an unsigned `daily.cud` holding the EICAR signature
(body .ndb and hash .hdb) and the MD5 hashes of every file of Debian's `clamav-testfiles`, so that
clamd's VERSION reports a signature version and date like a real database does. Works as root (no
`User` directive: clamd stays the invoking user) and as an ordinary user.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_NAME = "Eicar-Test-Signature"
TESTFILES_DIR = Path("/usr/share/clamav-testfiles")
CLAMD_CANDIDATES = ("/usr/sbin/clamd", "/usr/bin/clamd")

__all__ = [
    "EICAR",
    "EICAR_NAME",
    "TESTFILES_DIR",
    "ClamdTestServer",
    "clamd_binary",
    "clamd_missing_reason",
    "testfiles",
]


def clamd_binary() -> str | None:
    found = shutil.which("clamd")
    if found:
        return found
    return next((c for c in CLAMD_CANDIDATES if os.access(c, os.X_OK)), None)


def clamd_missing_reason() -> str | None:
    if clamd_binary() is None:
        return "clamd is not installed (Debian: apt-get install clamav-daemon)"
    return None


def testfiles() -> list[Path]:
    """The files of Debian's clamav-testfiles package (empty when it is not installed)."""
    if not TESTFILES_DIR.is_dir():
        return []
    return sorted(p for p in TESTFILES_DIR.iterdir() if p.is_file())


def _tmpdir() -> Path:
    # /tmp, not $TMPDIR: Debian's AppArmor profile for clamd allows /tmp/** and little else, and a unix
    # socket path must stay under ~100 bytes.
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix="mb-clamd-", dir=base))


def _signature_files(extra_hashes: dict[str, bytes] | None = None) -> dict[str, bytes]:
    ndb = f"{EICAR_NAME}:0:*:{EICAR.hex()}\n"
    hdb = [f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{EICAR_NAME}"]
    for path in testfiles():
        data = path.read_bytes()
        hdb.append(f"{hashlib.md5(data).hexdigest()}:{len(data)}:ClamAV-Test-File.{path.name}")
    for name, data in (extra_hashes or {}).items():
        hdb.append(f"{hashlib.md5(data).hexdigest()}:{len(data)}:{name}")
    return {"daily.ndb": ndb.encode(), "daily.hdb": ("\n".join(hdb) + "\n").encode()}


def build_cud(version: int, built: datetime, files: dict[str, bytes]) -> bytes:
    """An unsigned ClamAV database (.cud): a 512-byte header, then a tar with daily.info and the files."""
    stamp = int(built.timestamp())
    header = f"ClamAV-VDB:{built.astimezone(UTC):%d %b %Y %H-%M +0000}:{version}:{len(files)}:90:X:X:mailbastion-tests:{stamp}"
    info = header + "\n" + "".join(f"{n}:{len(d)}:{hashlib.sha256(d).hexdigest()}\n" for n, d in files.items())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("daily.info", info.encode()), *files.items()]:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            entry.mtime = stamp
            tar.addfile(entry, io.BytesIO(data))
    return header.encode().ljust(512, b" ") + buf.getvalue()


class ClamdTestServer:
    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        signature_age: timedelta = timedelta(hours=1),
        extra_hashes: dict[str, bytes] | None = None,
        start_timeout: float = 60.0,
        cache: bool = True,
    ) -> None:
        binary = clamd_binary()
        if binary is None:
            import pytest

            pytest.skip(clamd_missing_reason() or "clamd missing")
        self.binary = binary
        self._own_dir = workdir is None
        self.dir = _tmpdir() if workdir is None else Path(workdir)
        self.db_dir = self.dir / "db"
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(self.dir / "clamd.sock")
        if len(self.socket_path) > 100:
            self.dir = _tmpdir()
            self._own_dir = True
            self.socket_path = str(self.dir / "clamd.sock")
            self.db_dir = self.dir / "db"
            self.db_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "clamd.log"
        self.conf_path = self.dir / "clamd.conf"
        self.start_timeout = start_timeout
        self.extra_hashes = dict(extra_hashes or {})
        self.cache = cache  # clamd's own cache of clean results by hash; benchmarks turn it off
        self.version = 27000
        self.local_only = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_database(age=signature_age)
        self._write_conf()

    def _write_conf(self) -> None:
        self.conf_path.write_text(
            "\n".join([
                "Foreground yes",
                f"LocalSocket {self.socket_path}",
                "LocalSocketMode 600",
                "FixStaleSocket yes",
                f"DatabaseDirectory {self.db_dir}",
                f"LogFile {self.log_path}",
                "LogTime yes",
                f"TemporaryDirectory {self.dir}",
                "MaxThreads 16",
                "MaxConnectionQueueLength 64",
                "IdleTimeout 30",
                "StreamMaxLength 50M",
                "SelfCheck 3600",
                "ScanMail yes",
                "ScanArchive yes",
                "Bytecode no",
                *([] if self.cache else ["DisableCache yes"]),
                "",
            ])
        )

    def write_database(self, *, age: timedelta = timedelta(hours=1), version: int | None = None) -> None:
        """Write daily.cud built `age` ago; call reload() to have a running clamd read it."""
        self.version = version if version is not None else self.version + 1
        self.local_only = False
        built = datetime.now(UTC) - age
        data = build_cud(self.version, built, _signature_files(self.extra_hashes))
        for name in _signature_files():
            (self.db_dir / name).unlink(missing_ok=True)
        tmp = self.db_dir / "daily.cud.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.db_dir / "daily.cud")

    def write_local_database(self, *, age: timedelta = timedelta(hours=1)) -> None:
        """Write the same signatures as plain daily.ndb and daily.hdb files, with no .cud: clamd's VERSION then
        carries no signature version nor date (like a site's own databases, or the anchor bench's). The files'
        modification time is `age` ago. Call reload() to have a running clamd read them."""
        self.local_only = True
        stamp = (datetime.now(UTC) - age).timestamp()
        (self.db_dir / "daily.cud").unlink(missing_ok=True)
        for name, data in _signature_files(self.extra_hashes).items():
            path = self.db_dir / name
            path.write_bytes(data)
            os.utime(path, (stamp, stamp))

    # ---- lifecycle

    def start(self) -> ClamdTestServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        env = dict(os.environ, TZ=os.environ.get("TZ", "UTC"))
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"clamd exited with {self.proc.returncode}: {err[-2000:]}\n{self._log_tail()}")
            if self.command("PING", quiet=True) == "PONG":
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"clamd did not answer PING within {self.start_timeout}s\n{self._log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        Path(self.socket_path).unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self, timeout: float = 30.0) -> None:
        """RELOAD and wait until VERSION reports the database on disk (no version at all for local files)."""
        self.command("RELOAD")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.command("VERSION", quiet=True) or ""
            if (f"/{self.version}/" in reply) if not self.local_only else (reply.startswith("ClamAV ")
                                                                             and "/" not in reply):
                return
            time.sleep(0.1)
        raise RuntimeError(f"clamd did not load the database on disk (version {self.version})")

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, cmd: str, *, quiet: bool = False) -> str | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(self.socket_path)
                s.sendall(b"z" + cmd.encode() + b"\0")
                data = b""
                while not data.endswith(b"\0"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data.rstrip(b"\0").decode(errors="replace")
        except OSError:
            if quiet:
                return None
            raise

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ClamdTestServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def clamd_server_fixture() -> Iterator[ClamdTestServer]:
    """Body of a pytest fixture: `clamd = pytest.fixture(scope="session")(clamd_server_fixture)`."""
    server = ClamdTestServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
