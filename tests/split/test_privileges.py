"""`serve` started as root binds its ports (25 here), then runs as the service user with no capability left,
in every process (acceptors and the MDA's own process too) and every thread. In a network namespace of its
own, so port 25 is free whatever else runs on the machine."""

from __future__ import annotations

import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from split_kit import (
    SERVICE_USER,
    Namespaces,
    ensure_service_user,
    identity,
    log_has,
    mb_argv,
    need_root_tools,
    open_tmpdir,
    reachable,
    server_pids,
    stop,
    wait_for,
)

from mailbastion.testing.deployment import _set_toml

GREET = """
import json, socket
with socket.create_connection(("127.0.0.1", 25), timeout=30) as s:
    print(json.dumps(s.recv(512).decode()))
"""


def _init(root: Path, extra: dict[tuple[str, str], str]) -> Path:
    res = subprocess.run(mb_argv("init", "--dir", str(root), "--domain", "example.test"), check=False, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    cfg = root / "mailbastion.toml"
    text = cfg.read_text()
    for (section, key), value in {("smtp", "listen"): '["127.0.0.1:25"]', ("lmtp", "listen"): '"127.0.0.1:2424"',
                                  ("antivirus.clamav", "enabled"): "false",
                                  ("antivirus", "stale_policy"): '"alarm_only"', **extra}.items():
        text = _set_toml(text, section, key, value)
    cfg.write_text(text)
    return cfg


def test_serve_binds_port_25_then_runs_as_the_service_user_in_every_process() -> None:
    need_root_tools("ip", "unshare")
    ensure_service_user()
    root = open_tmpdir("mb-priv-")
    try:
        cfg = _init(root / "var", {("server", "workers"): "2", ("metrics", "listen"): '"127.0.0.1:9325"'})
        uid = pwd.getpwnam(SERVICE_USER).pw_uid
        assert (root / "var" / "tls" / "ca.key").stat().st_uid == 0  # init kept the CA key root's
        assert (root / "var" / "directory.db").stat().st_uid == uid  # and handed the rest to the service user
        with Namespaces(["priv"], []) as ns:
            log = root / "serve.log"
            proc = ns.popen("priv", reachable(mb_argv("serve", "-c", str(cfg))), log)
            wait_for("serve ready", lambda: proc.poll() is not None or log_has(log, "mailbastion serving (all)"),
                     timeout=180)
            assert proc.poll() is None, log.read_text()[-3000:]
            assert str(ns.python("priv", GREET)).startswith("220 ")
            pids = server_pids(proc)
            assert len(pids) >= 3, pids  # the server (with the MDA: lmtp.direct) and two acceptors
            for pid in pids:
                for thread in identity(pid):
                    assert thread["uids"] == [uid] * 4, (pid, thread)
                    assert thread["CapEff"] == thread["CapPrm"] == thread["CapAmb"] == 0, (pid, thread)
            assert log_has(log, f"running as user {SERVICE_USER}")
            spool = root / "var" / "spool" / "incoming"
            assert spool.stat().st_uid == uid  # made at start, by the service user
            assert stop(proc) == 0, log.read_text()[-2000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_serve_refuses_a_service_user_that_does_not_exist(tmp_path: Path) -> None:
    need_root_tools()
    cfg = _init(tmp_path / "var", {("server", "user"): '"nosuchuser-mb"'})
    res = subprocess.run(mb_argv("serve", "-c", str(cfg)), capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "the service user 'nosuchuser-mb' does not exist" in res.stderr and "useradd" in res.stderr


def test_serve_refuses_when_the_service_user_cannot_reach_its_folder(tmp_path: Path) -> None:
    """pytest's folders are root's (0700): the service user cannot enter them, and serve says so."""
    need_root_tools("unshare")
    ensure_service_user()
    cfg = _init(tmp_path / "var", {})
    res = subprocess.run(reachable(mb_argv("serve", "-c", str(cfg))), capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"the service user {SERVICE_USER} cannot" in res.stderr, res.stderr


def test_the_test_kit_keeps_root_and_says_so(tmp_path: Path) -> None:
    from mailbastion.config import load_settings, weakened
    from mailbastion.testing.deployment import Deployment

    d = Deployment(tmp_path).init()
    assert 'server.user = "root" (serve keeps root privileges after binding its ports)' in weakened(
        load_settings(d.config))


@pytest.fixture(autouse=True)
def _no_stray_namespaces() -> Iterator[None]:
    yield
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout \
        if shutil.which("ip") else ""
    assert "mbpriv" not in listed
