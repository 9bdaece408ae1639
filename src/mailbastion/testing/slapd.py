"""A loopback OpenLDAP server for tests (Debian's `slapd`): a throwaway database under a folder, an
administrator with a password made for this run, and helpers to add, change and delete people.

    with SlapdTestServer(tmp_path, people=[("alice", "alice@example.org")]) as ldap:
        ldap.url, ldap.base, ldap.admin_dn, ldap.password_file
        ldap.set_attribute("alice", "employeeType", "disabled")
        ldap.delete("alice")

`SlapdTestServer.available()` says whether slapd, slapadd and the schema files are installed (tests skip
otherwise: `make deb-test-deps`). Listens on 127.0.0.1 only, without TLS.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
SLAPADD = shutil.which("slapadd") or ("/usr/sbin/slapadd" if Path("/usr/sbin/slapadd").exists() else None)
SCHEMA = Path("/etc/ldap/schema")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlapdTestServer:
    base = "dc=people,dc=example"
    admin_dn = "cn=admin,dc=people,dc=example"

    def __init__(self, folder: Path, *, people: Iterable[tuple[str, str]] = ()) -> None:
        self.folder = folder
        self.people = list(people)  # (uid, mail)
        self.password = secrets.token_urlsafe(18)
        self.password_file = folder / "ldap-password"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return SLAPD is not None and SLAPADD is not None and (SCHEMA / "inetorgperson.schema").exists()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def dn(self, uid: str) -> str:
        return f"uid={uid},{self.base}"

    def start(self) -> Self:
        assert SLAPD is not None and SLAPADD is not None, "slapd is not installed"
        db = self.folder / "ldap-db"
        db.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "slapd.conf"
        conf.write_text(f"""include {SCHEMA}/core.schema
include {SCHEMA}/cosine.schema
include {SCHEMA}/inetorgperson.schema
pidfile {self.folder}/slapd.pid
moduleload back_mdb
database mdb
suffix "{self.base}"
rootdn "{self.admin_dn}"
rootpw {self.password}
directory {db}
access to * by * read
""")
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        ldif = "dn: dc=people,dc=example\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: people\n\n"
        ldif += "".join(self._entry(uid, mail) + "\n" for uid, mail in self.people)
        res = subprocess.run([SLAPADD, "-f", str(conf)], input=ldif.encode(), capture_output=True, timeout=60,
                             check=False)
        if res.returncode != 0 and b"back_mdb" in res.stderr:  # built in: no module to load
            conf.write_text(conf.read_text().replace("moduleload back_mdb\n", ""))
            res = subprocess.run([SLAPADD, "-f", str(conf)], input=ldif.encode(), capture_output=True, timeout=60,
                                 check=False)
        if res.returncode != 0:
            raise RuntimeError(f"slapadd failed: {res.stderr.decode(errors='replace')}")
        self.proc = subprocess.Popen([SLAPD, "-f", str(conf), "-h", f"ldap://127.0.0.1:{self.port}/", "-d", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise RuntimeError(f"slapd exited: {err}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError("slapd did not listen within 30s") from None
                time.sleep(0.1)

    def _entry(self, uid: str, mail: str) -> str:
        return (f"dn: {self.dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()} Example\n"
                f"sn: Example\nmail: {mail}\n")

    def _admin(self) -> Any:
        import ldap3  # type: ignore[import-untyped]

        return ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), user=self.admin_dn,
                                password=self.password, auto_bind=True, raise_exceptions=True)

    def add(self, uid: str, mail: str) -> None:
        conn = self._admin()
        try:
            conn.add(self.dn(uid), ["inetOrgPerson"], {"uid": uid, "cn": f"{uid.title()} Example", "sn": "Example",
                                                       "mail": mail})
        finally:
            conn.unbind()

    def set_attribute(self, uid: str, name: str, value: str) -> None:
        import ldap3  # type: ignore[import-untyped]

        conn = self._admin()
        try:
            conn.modify(self.dn(uid), {name: [(ldap3.MODIFY_REPLACE, [value])]})
        finally:
            conn.unbind()

    def delete(self, uid: str) -> None:
        conn = self._admin()
        try:
            conn.delete(self.dn(uid))
        finally:
            conn.unbind()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["SlapdTestServer"]
