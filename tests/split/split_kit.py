"""Test kit of tests/split: network namespaces, commands run inside them, and the service user's reach.

    with Namespaces(["gw", "in", "cl"], links=[("gw", "10.77.0.1", "in", "10.77.0.2"),
                                                ("gw", "10.77.0.5", "cl", "10.77.0.6")]) as ns:
        ns.run("gw", ["nft", "-f", "rules.nft"])
        proc = ns.popen("gw", serve_argv(config), log)

Addresses exist only inside the namespaces the kit creates (veth pairs moved into them at once); every
namespace is deleted on exit, whatever happened, which also deletes its veth ends.

`as_service_user(argv)` runs a command as the service user, and `reachable_prefix()` makes this Python
readable to that user when it lives below a folder only root may enter (this machine's interpreter is in
/root/.pyenv): inside a private mount namespace a tmpfs (0755) covers that folder, holding a bind mount of
the one subfolder Python needs. Nothing outside that mount namespace changes; on a machine whose Python
is world-readable (a Debian python3, CI) it does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

import mailbastion

SRC = Path(mailbastion.__file__).resolve().parent.parent
SERVICE_USER = "mailbastion"


def need_root_tools(*tools: str) -> None:
    """Skip (with the reason) unless running as root with the given programs: namespaces need root."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs the suite as root)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (make deb-test-deps installs them)")


def ensure_service_user() -> None:
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", SERVICE_USER], capture_output=True, check=False)


def open_tmpdir(prefix: str) -> Path:
    """A folder the service user can reach (pytest's base folder is 0700 root): below /tmp, mode 0755."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def _blocking(folder: Path) -> tuple[Path, Path] | None:
    """(the first folder above `folder` others cannot enter, its child on the way) or None."""
    parts = folder.resolve().parts
    for i in range(1, len(parts)):
        here = Path(*parts[:i])
        if not os.stat(here).st_mode & stat.S_IXOTH:
            return here, Path(*parts[: i + 1])
    return None


def reach_script() -> str:
    """Shell lines that, in a private mount namespace, make this Python's folders reachable for others."""
    folders = [Path(os.__file__).parent, Path(sysconfig.get_paths()["purelib"]), SRC, Path(sys.executable).resolve()]
    lines, done = ["set -e"], set()
    for folder in folders:
        found = _blocking(folder)
        if found is None or found in done:
            continue
        done.add(found)
        block, child = found
        hold = f"/run/mb-hold-{len(done)}"
        lines += [f"mkdir -p {hold}", f"mount --bind {child} {hold}",
                  f"mount -t tmpfs -o mode=0755,size=1m mb-reach {block}", f"mkdir -p {child}",
                  f"mount --move {hold} {child}"]
    lines.append('exec "$@"')
    return "\n".join(lines)


def reachable(argv: Sequence[str]) -> list[str]:
    """`argv` run in its own mount namespace where this Python is readable by every user."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", reach_script(), "reach", *argv]


def as_service_user(argv: Sequence[str]) -> list[str]:
    return reachable(["runuser", "-u", SERVICE_USER, "--", *argv])


def mb_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailbastion", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def wait_for(what: str, condition: object, timeout: float = 90.0, every: float = 0.2) -> object:
    """Poll `condition()` until it is truthy; its value. TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()  # type: ignore[operator]
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(every)


def log_has(path: Path, text: str, since: int = 0) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return text.encode() in f.read()
    except FileNotFoundError:
        return False


class Namespaces:
    """Network namespaces named `<name><pid>`, linked by veth pairs, removed on exit."""

    def __init__(self, names: Sequence[str], links: Sequence[tuple[str, str, str, str]], prefix_len: int = 30) -> None:
        tag = os.getpid() % 100000
        self.names = {n: f"mb{n}{tag}" for n in names}
        self.links = links
        self.prefix_len = prefix_len
        self.procs: list[subprocess.Popen[bytes]] = []

    def __getitem__(self, name: str) -> str:
        return self.names[name]

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def __enter__(self) -> Self:
        try:
            for ns in self.names.values():
                self.ip("netns", "add", ns)
                self.ip("-n", ns, "link", "set", "lo", "up")
            for i, (a, addr_a, b, addr_b) in enumerate(self.links):
                ea, eb = f"{self.names[a][:9]}v{i}a", f"{self.names[b][:9]}v{i}b"
                self.ip("link", "add", ea, "netns", self.names[a], "type", "veth", "peer", "name", eb, "netns",
                        self.names[b])
                for ns, dev, addr in ((self.names[a], ea, addr_a), (self.names[b], eb, addr_b)):
                    self.ip("-n", ns, "addr", "add", f"{addr}/{self.prefix_len}", "dev", dev)
                    self.ip("-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.close()
            raise
        return self

    def argv(self, name: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[name], *argv]

    def run(self, name: str, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(self.argv(name, argv), capture_output=True, text=True, env=env(), input=input,
                             timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])}... in {name} failed ({res.returncode}): {res.stderr[-2000:]}")
        return res

    def python(self, name: str, code: str, *args: str, timeout: float = 120) -> object:
        """Run Python `code` in namespace `name` (as root); it prints one JSON value, returned here."""
        res = self.run(name, [sys.executable, "-c", code, *args], timeout=timeout)
        return json.loads(res.stdout.strip().splitlines()[-1])

    def popen(self, name: str, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.argv(name, argv), stdout=out, stderr=subprocess.STDOUT, env=env(),
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            stop(proc, signal.SIGKILL)
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def server_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The `mailbastion serve` processes of the session `proc` leads (the server and its children)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat_fields[3]) == proc.pid and b"serve" in cmdline and b"mailbastion" in cmdline:
            out.append(int(entry.name))
    return sorted(out)


def identity(pid: int) -> list[dict[str, object]]:
    """Per thread of `pid`: its uids (real, effective, saved, fs) and capability sets."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields: dict[str, object] = {"tid": int(task.name)}
        for line in (task / "status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Uid":
                fields["uids"] = [int(v) for v in value.split()]
            elif key in ("CapEff", "CapPrm", "CapAmb", "CapInh"):
                fields[key] = int(value.strip(), 16)
        out.append(fields)
    return out


__all__ = ["SERVICE_USER", "SRC", "Namespaces", "as_service_user", "ensure_service_user", "env", "identity",
           "log_has", "mb_argv", "need_root_tools", "open_tmpdir", "reach_script", "reachable", "server_pids",
           "stop", "wait_for"]
