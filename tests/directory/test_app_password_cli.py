"""`mailbastion account app-password create|list|revoke` and `account show` through click, on a real
configuration and SQLite file; `account add` makes the standard folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailbastion.cli import main_group
from mailbastion.config import load_settings
from mailbastion.directory import Directory


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailbastion.toml"
    path.write_text('[server]\ndata_dir = "."\nhostname = "mail.example.org"\n'
                    '[imap]\nlisten_tls = ["0.0.0.0:993"]\nlisten = ["0.0.0.0:143"]\n')
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main_group, [*args, "-c", str(config)], input=stdin)
    return result.exit_code, result.output


def test_app_passwords_from_the_command_line(config: Path) -> None:
    assert run(config, "domain", "add", "example.org")[0] == 0
    assert run(config, "account", "add", "bob@example.org", "--password-stdin", stdin="a long enough secret\n")[0] == 0
    code, out = run(config, "account", "app-password", "create", "bob@example.org", "--name", "phone")
    assert code == 0
    secret = re.search(r"shown once, type it into the device now\): (\S+)", out).group(1)  # type: ignore[union-attr]
    directory = Directory.from_settings(load_settings(config))
    assert directory.verify_login("bob@example.org", secret).device == "phone"
    code, out = run(config, "account", "app-password", "list", "bob@example.org")
    assert code == 0 and re.search(r"phone\s+\S+ \S+\s+\d{4}-", out) and secret not in out  # last used: the login
    assert run(config, "account", "app-password", "create", "bob@example.org", "--name", "phone")[0] == 1
    assert run(config, "account", "app-password", "revoke", "bob@example.org")[0] == 2  # --name or --all
    assert run(config, "account", "app-password", "revoke", "bob@example.org", "--all") == (0, "revoked: phone\n")
    assert not directory.verify_login("bob@example.org", secret).ok
    code, out = run(config, "account", "app-password", "revoke", "bob@example.org", "--name", "phone")
    assert code == 1 and "has no app password" in out
    actions = [e.action for e in directory.audit.events(limit=3)]
    assert actions.count("app_password.revoked") == 1 and "app_password.created" in actions


def test_account_show_prints_state_quota_devices_and_client_settings(config: Path, tmp_path: Path) -> None:
    run(config, "domain", "add", "example.org")
    run(config, "account", "add", "carol@example.org", "--password-stdin", "--quota", "1000000",
        stdin="a long enough secret\n")
    box = tmp_path / "mail" / "example.org" / "carol"
    assert {p.name for p in box.iterdir() if p.name.startswith(".")} == {
        ".Junk", ".Sent", ".Drafts", ".Trash", ".Archive"}
    assert all((box / f / "cur").is_dir() and (box / f / "maildirfolder").exists()
               for f in (".Sent", ".Archive"))
    run(config, "account", "app-password", "create", "carol@example.org", "--name", "laptop thunderbird")
    code, out = run(config, "account", "show", "Carol@Example.org")
    assert code == 0
    assert "state          active" in out and "quota          1000000 bytes; used 0 bytes in 0 messages" in out
    assert "laptop thunderbird (created" in out
    assert re.search(r"imap\s+mail\.example\.org:993\s+implicit TLS", out)
    assert re.search(r"imap\s+mail\.example\.org:143\s+STARTTLS", out)
    assert re.search(r"submission\s+mail\.example\.org:2587\s+STARTTLS\s*$", out, re.M)  # built (issue 10)
    code, out = run(config, "account", "show", "nobody@example.org")
    assert code == 1 and "no account nobody@example.org" in out
