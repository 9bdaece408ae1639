"""`mailbastion domain|account|audit-log` through click, against a real configuration and SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailbastion.toml"
    path.write_text('[server]\ndata_dir = "."\n')
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main_group, [*args, "-c", str(config)], input=stdin)
    return result.exit_code, result.output


def test_domain_account_alias_flow(config: Path) -> None:
    code, out = run(config, "domain", "add", "example.org", "--by", "admin:alice")
    assert code == 0 and out.startswith("domain example.org added\n")
    assert run(config, "domain", "list") == (0, "example.org\n")
    code, out = run(config, "account", "add", "bob@example.org", "--reason", "joiner HR-7")
    assert code == 0 and "password (shown once" in out
    password = out.strip().rsplit(" ", 1)[-1]
    code, out = run(config, "account", "add", "carol@example.org", "--password-stdin",
                    stdin="a long enough secret\n")
    assert code == 0 and "password" not in out
    assert run(config, "account", "alias", "add", "info@example.org", "bob@example.org")[0] == 0
    code, out = run(config, "account", "list")
    assert code == 0 and "bob@example.org" in out and "active" in out
    code, out = run(config, "account", "deactivate", "bob@example.org", "--reason", "leaver HR-9")
    assert code == 0 and "deactivated" in out
    doc = json.loads((config.parent / "recipient-map.json").read_text())
    assert doc["addresses"] == ["carol@example.org", "reports@example.org"]
    assert doc["aliases"] == {"dmarc-reports@example.org": ["reports@example.org"],
                              "tls-reports@example.org": ["reports@example.org"]}  # info@ reaches nobody now
    for db_file in config.parent.glob("directory.db*"):  # the database and its WAL
        assert password.encode() not in db_file.read_bytes()

    code, out = run(config, "audit-log", "list", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in events][:2] == ["account.left", "alias.added"]  # the whole leave (issue 13)
    assert events[-1]["actor"] == "admin:alice" and events[0]["reason"] == "leaver HR-9"
    # domain, reports@ and its two aliases, bob, carol, info@, bob's deactivation
    assert run(config, "audit-log", "verify") == (0, "audit log intact: 8 records\n")


def test_errors_are_one_line_and_exit_1(config: Path) -> None:
    code, out = run(config, "account", "add", "x@nowhere.org")
    assert code == 1 and out.count("\n") == 1 and "not one of our domains" in out
    run(config, "domain", "add", "example.org")
    code, out = run(config, "domain", "add", "example.org")
    assert code == 1 and "exists" in out
    code, out = run(config, "account", "add", "not-an-address")
    assert code == 1 and out.startswith("mailbastion: ")
    code, out = run(config, "account", "deactivate", "ghost@example.org", "--reason", "x")
    assert code == 1 and "no account" in out
    code, out = run(config, "account", "add", "y@example.org", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least" in out


def test_audit_log_verify_names_the_broken_record(config: Path) -> None:
    run(config, "domain", "add", "example.org")
    run(config, "domain", "add", "example.net")
    run(config, "domain", "add", "example.com")
    con = sqlite3.connect(config.parent / "audit.db")  # [audit] url's default
    with con:
        con.execute("UPDATE audit_events SET actor = 'someone else' WHERE seq = 2")
    con.close()
    code, out = run(config, "audit-log", "verify")
    assert code == 1 and "record 2" in out and "altered" in out


def test_audit_log_anchor(config: Path) -> None:
    run(config, "domain", "add", "example.org")
    code, anchor = run(config, "audit-log", "head")
    assert code == 0 and anchor.startswith("4:")  # the domain, reports@ and its two aliases
    assert run(config, "audit-log", "verify", "--anchor", anchor.strip())[0] == 0
    assert run(config, "audit-log", "verify", "--anchor", "1:" + "0" * 64)[0] == 1


def test_pending_account_approved_and_password_reset(config: Path) -> None:
    run(config, "domain", "add", "example.org")
    assert run(config, "account", "add", "dan@example.org", "--pending")[0] == 0
    assert "pending" in run(config, "account", "list", "--state", "pending")[1]
    assert run(config, "account", "state", "dan@example.org", "active", "--reason", "approved by IT-3")[0] == 0
    code, out = run(config, "account", "password", "dan@example.org", "--password-stdin",
                    stdin="another long secret\n")
    assert code == 0 and "changed" in out
    from mailbastion.config import load_settings
    from mailbastion.directory import Directory

    d = Directory.from_settings(load_settings(config))
    assert d.verify_password("dan@example.org", "another long secret")


def test_aliases_to_accounts_that_cannot_receive(config: Path) -> None:
    run(config, "domain", "add", "example.org")
    for user in ("bob", "erin"):
        assert run(config, "account", "add", f"{user}@example.org")[0] == 0
    assert run(config, "account", "add", "dan@example.org", "--pending")[0] == 0
    assert run(config, "account", "alias", "add", "info@example.org", "bob@example.org")[0] == 0
    assert run(config, "account", "alias", "add", "all@example.org", "info@example.org")[0] == 0
    assert run(config, "account", "alias", "add", "help@example.org", "erin@example.org")[0] == 0
    code, out = run(config, "account", "list")
    assert code == 0 and "cannot receive" not in out  # nothing dead yet
    # a leaver: its aliases are named when it leaves, and by every `account list` afterwards
    code, out = run(config, "account", "deactivate", "bob@example.org", "--reason", "leaver")
    assert code == 0 and "info@example.org -> bob@example.org: left" in out
    code, out = run(config, "account", "deactivate", "erin@example.org", "--reason", "leaves", "--at", "2000-01-01")
    assert code == 0
    code, out = run(config, "account", "list")
    assert code == 0 and "aliases whose target cannot receive (3)" in out
    assert "  info@example.org -> bob@example.org: left\n" in out
    assert "  all@example.org -> info@example.org: alias reaching no active account\n" in out
    assert "  help@example.org -> erin@example.org: left\n" in out
    assert "aliases whose target" not in run(config, "account", "list", "--domain", "example.net")[1]
    # no new alias to a target that cannot receive
    for target, why in (("bob@example.org", "left"), ("dan@example.org", "pending"),
                        ("info@example.org", "alias reaching no active account")):
        code, out = run(config, "account", "alias", "add", "new@example.org", target)
        assert code == 1 and out == f"mailbastion: alias target {target} cannot receive mail ({why})\n"
    assert run(config, "account", "alias", "add", "new@example.org", "someone@elsewhere.example")[0] == 0


def test_domain_add_says_when_the_keys_could_not_be_made(config: Path) -> None:
    (config.parent / "dkim").write_text("a file where the key folder should be")
    code, out = run(config, "domain", "add", "example.org")
    assert code == 1 and out.count("\n") == 1
    assert "domain example.org added, but its DKIM keys were not made" in out
    assert "mailbastion dkim keygen example.org" in out
    assert run(config, "domain", "list") == (0, "example.org\n")
