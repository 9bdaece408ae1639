"""`mailbastion aup` through the real command line on an initialised deployment: the template, publish (and
the refusal to change a published version), list, show, and the report in text and CSV, with "now" moved
past the grace period through `[lifecycle] testing_clock_offset_file` (core/clock.py)."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.aup.store import AupStore
from mailbastion.config import load_settings
from mailbastion.directory.store import Directory
from mailbastion.testing.deployment import MB, Deployment

PASSWORD = "Correct-Horse-Battery-9"
DAY = 86400


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dep = Deployment(tmp_path_factory.mktemp("aup-cli"), settings={
        ("antivirus.clamav", "enabled"): "false", ("lifecycle", "testing_clock_offset_file"): '"clock-offset"'})
    dep.init()
    for who in ("alice", "bob"):
        dep.mb("account", "add", f"{who}@example.test", "--password-stdin", input=f"{PASSWORD}\n")
    yield dep


def run(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MB, "aup", *args, "-c", str(d.config)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_publish_list_show_and_report(d: Deployment, tmp_path: Path) -> None:
    assert load_settings(d.config).aup.enforce == "submission" and "[aup]" in d.config.read_text()  # from init
    r = run(d, "report")
    assert r.returncode == 0 and "no version of the acceptable use policy is in effect" in r.stdout

    template = run(d, "template")
    assert template.returncode == 0 and "## 7. Sanctions" in template.stdout
    policy = tmp_path / "aup.md"
    policy.write_text(template.stdout.replace("[Organisation]", "Example Ltd"), encoding="utf-8")
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()

    r = run(d, "publish", str(policy), "--version", "2026.1", "--reason", "board decision 12")
    assert r.returncode == 0 and f"published version 2026.1 (sha256 {digest})" in r.stdout, r.stderr
    assert "in effect now" in r.stdout and "/aup) within 14 days" in r.stdout
    r = run(d, "publish", str(policy), "--version", "2026.1")
    assert r.returncode == 0 and "nothing changed" in r.stdout
    changed = tmp_path / "aup2.md"
    changed.write_text(policy.read_text() + "\nOne more rule.\n", encoding="utf-8")
    r = run(d, "publish", str(changed), "--version", "2026.1")
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "with another text" in r.stderr and "Traceback" not in r.stderr
    r = run(d, "publish", str(changed), "--version", "2027.1", "--effective", "2099-01-04")
    assert r.returncode == 0 and "in effect from 2099-01-04 00:00 UTC" in r.stdout
    r = run(d, "publish", str(changed), "--version", "2027.2", "--effective", "soon")
    assert r.returncode == 1 and "is not a date" in r.stderr

    r = run(d, "list")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].startswith("VERSION")
    assert lines[1].split()[:2] == ["2026.1", "in"] and "0/4" in lines[1] and digest[:16] in lines[1]
    assert lines[2].split()[:2] == ["2027.1", "upcoming"]

    r = subprocess.run([*MB, "aup", "show", "--raw", "-c", str(d.config)], capture_output=True, timeout=120, check=False)
    assert r.returncode == 0 and hashlib.sha256(r.stdout).hexdigest() == digest  # exactly what was published
    r = run(d, "show", "2027.1")
    assert r.returncode == 0 and "One more rule." in r.stdout and "sha256 " in r.stdout
    assert run(d, "show", "9.9").returncode == 1

    # alice accepts (as the portal does); then "now" moves past the grace period
    store = AupStore(Directory.from_settings(load_settings(d.config)))
    store.accept("alice@example.test", "2026.1", sha256=digest, client="192.0.2.44", by="portal:alice@example.test")
    r = run(d, "report")
    assert r.returncode == 0 and "grace 14 days; enforce = submission" in r.stdout
    assert "4 active account(s): 1 accepted, 3 due, 0 overdue" in r.stdout
    (d.root / "clock-offset").write_text(str(15 * DAY))
    r = run(d, "report")
    assert "4 active account(s): 1 accepted, 0 due, 3 overdue" in r.stdout
    bob = next(line for line in r.stdout.splitlines() if line.startswith("bob@example.test"))
    assert "OVERDUE" in bob
    r = run(d, "report", "--csv")
    rows = {row["address"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert r.returncode == 0 and set(rows) == {"alice@example.test", "bob@example.test", "postmaster@example.test",
                                               "reports@example.test"}
    assert rows["alice@example.test"]["state"] == "accepted" and rows["alice@example.test"]["client"] == "192.0.2.44"
    assert rows["alice@example.test"]["accepted_sha256"] == digest and rows["alice@example.test"]["overdue"] == "no"
    assert rows["bob@example.test"]["state"] == "overdue" and rows["bob@example.test"]["overdue"] == "yes"
    r = run(d, "report", "--csv", "--version", "2027.1")
    assert r.returncode == 0 and all(row["state"] == "due" for row in csv.DictReader(io.StringIO(r.stdout)))
    r = run(d, "report", "--version", "nope")
    assert r.returncode == 1 and "no version 'nope'" in r.stderr
