"""`mailbastion people import` (dry run, then apply) and `account leave | start | show`, through the real
command line against a real configuration, SQLite files and audit log."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.config import load_settings
from mailbastion.directory import AccountState
from mailbastion.directory.store import Directory

PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailbastion.toml"
    path.write_text('[server]\ndata_dir = "."\n[portal]\npublic_url = "https://portal.example.org"\n')
    assert run(path, "domain", "add", "example.org")[0] == 0
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main_group, [*args, "-c", str(config)], input=stdin)
    return result.exit_code, result.output


def directory(config: Path) -> Directory:
    return Directory.from_settings(load_settings(config))


def day(offset: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=offset)).strftime("%Y-%m-%d")


def test_people_import_shows_the_difference_then_applies_it(config: Path, tmp_path: Path) -> None:
    for user in ("ann", "bob", "old"):
        assert run(config, "account", "add", f"{user}@example.org", "--password-stdin", stdin=f"{PASSWORD}\n")[0] == 0
    csv = tmp_path / "staff.csv"
    csv.write_text("address,name,start,end,manager,groups\n"
                   f"ann@example.org,Ann Example,,,boss@example.org,sales;support\n"
                   f"bob@example.org,Bob Example,,{day(-1)},,\n"
                   f"new@example.org,New Joiner,{day(7)},,ann@example.org,sales\n"
                   f"now@example.org,Starts Today,{day(0)},{day(400)},,\n")
    code, out = run(config, "people", "import", str(csv), "--dry-run")
    assert code == 0, out
    assert re.search(r"^\+ join +new@example.org: group \+sales@example.org \(pending until", out, re.MULTILINE), out
    assert re.search(r"^\+ join +now@example.org.*\(active now\)", out, re.MULTILINE), out
    assert re.search(r"^~ change +ann@example.org: name - -> Ann Example, manager - -> boss@example.org, "
                     r"group \+sales@example.org, group \+support@example.org$", out, re.MULTILINE), out
    assert re.search(r"^- leave +bob@example.org: .*end - -> .*has passed", out, re.MULTILINE), out
    assert re.search(r"^  absent +old@example.org \(not in the file: not changed\)", out, re.MULTILINE), out
    assert "2 join, 1 change, 1 leave; 0 unchanged" in out and "dry run: nothing changed" in out
    d = directory(config)
    assert d.account("new@example.org") is None and d.account("bob@example.org").state is AccountState.ACTIVE  # type: ignore[union-attr]
    head = d.audit.head()

    code, out = run(config, "people", "import", str(csv), "--reason", "HR export")
    assert code == 0, out
    assert "applied: 2 joined, 1 changed, 1 left" in out
    links = dict(re.findall(r"^  (\S+@example.org) (https://portal.example.org/enrol/\S+)$", out, re.MULTILINE))
    assert set(links) == {"new@example.org", "now@example.org"}
    assert "password" not in out.lower()  # joiners get a link, never a password
    d = directory(config)
    assert d.account("new@example.org").state is AccountState.PENDING  # type: ignore[union-attr]
    assert d.account("now@example.org").state is AccountState.ACTIVE  # type: ignore[union-attr]
    assert d.account("bob@example.org").state is AccountState.LEFT  # type: ignore[union-attr]
    ann = d.account("ann@example.org")
    assert ann is not None and (ann.display_name, ann.manager) == ("Ann Example", "boss@example.org")
    assert {("sales@example.org", "ann@example.org"), ("sales@example.org", "new@example.org"),
            ("support@example.org", "ann@example.org")} <= set(d.list_aliases())
    records = [e for e in d.audit.events(None, newest_first=False) if e.seq > head[0]]
    assert {e.action for e in records} >= {"account.added", "account.dates_changed", "account.left", "alias.added",
                                           "portal.enrol_link_created"}
    assert all(e.reason == "HR export" for e in records if e.action != "portal.enrol_link_created")
    assert d.audit.verify().ok
    # a second run finds nothing left to do
    code, out = run(config, "people", "import", str(csv), "--dry-run")
    assert "0 join, 0 change, 0 leave; 3 unchanged" in out and "bob@example.org (left on" in out, out
    # the file manages the groups it names: Ann no longer listed in support leaves it (an alias no row
    # names, an administrator's own, is never touched); a file without a groups column changes no membership
    assert run(config, "account", "alias", "add", "team@example.org", "ann@example.org")[0] == 0
    moved = tmp_path / "moved.csv"
    moved.write_text("address,groups\nann@example.org,sales\nnew@example.org,sales;support\n")
    code, out = run(config, "people", "import", str(moved), "--dry-run")
    assert re.search(r"^~ change +ann@example.org: group -support@example.org$", out, re.MULTILINE), out
    assert re.search(r"^~ change +new@example.org: group \+support@example.org$", out, re.MULTILINE), out
    assert ("support@example.org", "ann@example.org") in set(directory(config).list_aliases())  # dry run
    assert run(config, "people", "import", str(moved), "--reason", "moved to sales")[0] == 0
    aliases = set(directory(config).list_aliases())
    assert ("support@example.org", "ann@example.org") not in aliases and ("team@example.org", "ann@example.org") in aliases
    assert {("sales@example.org", "ann@example.org"), ("support@example.org", "new@example.org")} <= aliases
    removed = [e for e in directory(config).audit.events(5) if e.action == "alias.removed"]
    assert removed and removed[0].subject == "support@example.org" and removed[0].reason == "moved to sales"
    names_only = tmp_path / "names.csv"
    names_only.write_text("address,name\nann@example.org,Ann Example\n")
    assert "0 join, 0 change, 0 leave; 1 unchanged" in run(config, "people", "import", str(names_only), "--dry-run")[1]
    # a file without an end column leaves the end dates alone; a local successor must exist
    assert run(config, "account", "leave", "ann@example.org", "--on", day(60), "--reason", "HR-5")[0] == 0
    short = tmp_path / "short.csv"
    short.write_text("address,name\nann@example.org,Ann Example\n")
    code, out = run(config, "people", "import", str(short), "--dry-run")
    assert "0 join, 0 change, 0 leave; 1 unchanged" in out, out
    code, out = run(config, "account", "leave", "ann@example.org", "--on", day(60), "--successor",
                    "ghost@example.org", "--reason", "HR-6")
    assert code == 1 and "successor ghost@example.org is neither an account nor an alias of ours" in out


@pytest.mark.parametrize(("content", "error"), [
    ("name\nAnn\n", "must name the columns, with at least 'address'"),
    ("address,salary\nann@example.org,1\n", "unknown column(s) salary"),
    ("address,start\nann@example.org,next tuesday\n", "line 2: start 'next tuesday' is not a date"),
    ("address\nann@example.org\nANN@example.org\n", "line 3: ann@example.org is listed twice (first on line 2)"),
    ("address\nann@elsewhere.example\n", "line 2: elsewhere.example is not one of our domains"),
    ("address\nnot an address\n", "line 2: address 'not an address'"),
])
def test_a_bad_people_file_is_one_line_and_changes_nothing(config: Path, tmp_path: Path, content: str,
                                                           error: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    head = directory(config).audit.head()
    code, out = run(config, "people", "import", str(csv))
    assert code == 1 and error in out and out.count("\n") == 1 and "Traceback" not in out, out
    assert directory(config).audit.head() == head


def test_leave_and_start_from_the_command_line(config: Path) -> None:
    for user in ("bob", "carol", "dan"):
        assert run(config, "account", "add", f"{user}@example.org")[0] == 0
    assert run(config, "account", "alias", "add", "team@example.org", "dan@example.org")[0] == 0
    code, out = run(config, "account", "leave", "bob@example.org", "--on", day(30), "--successor", "carol@example.org",
                    "--reason", "HR-1")
    assert code == 0 and f"leaves on {day(30)} 00:00 UTC" in out and "naming carol@example.org" in out, out
    code, out = run(config, "account", "show", "bob@example.org")
    assert f"leaves         {day(30)} 00:00" in out and "successor      carol@example.org (after leaving" in out
    assert "state          active" in out
    # a date that has passed is applied at once; an alias with no successor is reported
    code, out = run(config, "account", "leave", "dan@example.org", "--on", "now", "--reason", "HR-2")
    assert code == 0 and "has left" in out and "alias team@example.org still points at dan@example.org" in out, out
    code, out = run(config, "account", "show", "dan@example.org")
    assert "state          left" in out and "aliases        still pointing here, refused or lost: team@example.org" in out
    code, out = run(config, "account", "leave", "dan@example.org", "--on", day(3), "--reason", "again")
    assert code == 1 and "has already left" in out and out.count("\n") == 1
    code, out = run(config, "account", "leave", "carol@example.org", "--on", "soon", "--reason", "x")
    assert code == 2 and "is not a date" in out
    code, out = run(config, "account", "leave", "carol@example.org", "--on", day(1), "--successor",
                    "carol@example.org", "--reason", "x")
    assert code == 1 and "cannot be its own successor" in out
    # a start date in the future keeps a joiner pending; one that has passed starts it
    assert run(config, "account", "add", "erin@example.org", "--pending")[0] == 0
    code, out = run(config, "account", "start", "erin@example.org", "--on", day(5), "--reason", "HR-3")
    assert code == 0 and f"starts on {day(5)} 00:00 UTC (pending until then)" in out, out
    code, out = run(config, "account", "start", "erin@example.org", "--on", day(-1), "--reason", "HR-3b")
    assert code == 0 and "started" in out and directory(config).is_active("erin@example.org")
    actions = [e.action for e in directory(config).audit.events(None, subject="erin@example.org", newest_first=False)]
    assert actions == ["account.added", "account.dates_changed", "account.dates_changed", "account.started"]


def test_account_add_with_start_and_end_dates(config: Path) -> None:
    code, out = run(config, "account", "add", "joe@example.org", "--start", day(3), "--end", day(90))
    assert code == 0 and f"added (pending), starts {day(3)} 00:00, leaves {day(90)} 00:00" in out, out
    info = directory(config).account("joe@example.org")
    assert info is not None and info.state is AccountState.PENDING and info.start_at is not None
    code, out = run(config, "account", "add", "kim@example.org", "--start", day(3), "--end", day(1))
    assert code == 1 and "--end must be after --start" in out
