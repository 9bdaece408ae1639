"""The directory sync against a real OpenLDAP `slapd` on loopback (mailbastion.testing.slapd): a user
disabled or removed there is suspended here, with an audit record; accounts LDAP never listed are left
alone; a wrong base or a search that finds nobody changes nothing. Then through `serve`: the scheduler's
sync suspends within one interval and the gateway refuses the address."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.config.sections.lifecycle import LdapSyncSection
from mailbastion.directory import AccountState, Directory
from mailbastion.directory.login import LoginOutcome
from mailbastion.lifecycle.ldap_sync import LdapSync, LdapUnavailable, apply_ldap
from mailbastion.testing.deployment import MB, Deployment
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.slapd import SlapdTestServer

pytestmark = pytest.mark.skipif(not SlapdTestServer.available(), reason="Debian's slapd is not installed "
                                "(make deb-test-deps)")
PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture
def ldap(tmp_path: Path) -> Iterator[SlapdTestServer]:
    with SlapdTestServer(tmp_path, people=[("alice", "alice@example.org"), ("bob", "Bob@Example.org"),
                                           ("carol", "carol@example.org"), ("zed", "zed@example.org")]) as server:
        yield server


def section(ldap: SlapdTestServer, **kw: object) -> LdapSyncSection:
    values: dict[str, object] = {"enabled": True, "url": ldap.url, "require_tls": False, "start_tls": False,
                                 "bind_dn": ldap.admin_dn, "bind_password_file": str(ldap.password_file),
                                 "base": ldap.base, "disabled_filter": "(employeeType=disabled)"}
    return LdapSyncSection(**(values | kw))  # type: ignore[arg-type]


def test_disabled_or_removed_in_ldap_is_suspended_here(ldap: SlapdTestServer, tmp_path: Path) -> None:
    d = Directory(f"sqlite:///{tmp_path / 'd.db'}")
    d.add_domain("example.org", by="admin")
    for user in ("alice", "bob", "carol", "postmaster"):
        d.add_account(f"{user}@example.org", PASSWORD, "admin", "joiner")
    sync = LdapSync(section(ldap), Path)
    first = apply_ldap(d, sync.read())
    assert first.suspended == () and set(first.adopted) == {"alice@example.org", "bob@example.org", "carol@example.org"}
    assert first.not_here == 1  # zed: in LDAP, no account here
    ldap.set_attribute("bob", "employeeType", "disabled")
    ldap.delete("carol")
    people = sync.read()
    assert "bob@example.org" in people.disabled and "carol@example.org" not in people.enabled
    result = apply_ldap(d, people)
    assert result.suspended == ("bob@example.org", "carol@example.org")
    for user, why in (("bob", "disabled in LDAP"), ("carol", "no longer in LDAP")):
        assert d.account(f"{user}@example.org").state is AccountState.SUSPENDED  # type: ignore[union-attr]
        event = d.audit.events(1, subject=f"{user}@example.org")[0]
        assert (event.action, event.actor, event.reason) == ("account.state_changed", "ldap-sync", why)
        assert d.verify_login(f"{user}@example.org", PASSWORD).outcome is LoginOutcome.INACTIVE
    assert d.is_active("alice@example.org") and d.is_active("postmaster@example.org")
    assert apply_ldap(d, sync.read()).suspended == ()  # nothing twice
    assert d.audit.verify().ok


def test_a_wrong_base_or_an_empty_search_changes_nothing(ldap: SlapdTestServer, tmp_path: Path) -> None:
    d = Directory(f"sqlite:///{tmp_path / 'd.db'}")
    d.add_domain("example.org", by="admin")
    d.add_account("alice@example.org", PASSWORD, "admin", "joiner")
    apply_ldap(d, LdapSync(section(ldap), Path).read())
    head = d.audit.head()
    with pytest.raises(LdapUnavailable, match="noSuchObject|NoSuchObject"):
        LdapSync(section(ldap, base="dc=nowhere,dc=example"), Path).read()
    nobody = LdapSync(section(ldap, filter="(uid=nobody-at-all)"), Path).read()
    with pytest.raises(LdapUnavailable, match="listed nobody"):
        apply_ldap(d, nobody)
    with pytest.raises(LdapUnavailable, match="invalidCredentials|InvalidCredentials"):
        (tmp_path / "wrong").write_text("wrong password\n")
        LdapSync(section(ldap, bind_password_file=str(tmp_path / "wrong")), Path).read()
    with pytest.raises(LdapUnavailable, match="clear text"):
        LdapSync(section(ldap, require_tls=True), Path).read()
    assert d.is_active("alice@example.org") and d.audit.head() == head


def test_serve_suspends_within_one_interval_and_the_gateway_refuses(tmp_path: Path) -> None:
    with SlapdTestServer(tmp_path, people=[("bob", "bob@example.test")]) as ldap, DnsTestServer() as dns:
        d = Deployment(tmp_path / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("directory.ldap", "enabled"): "true", ("directory.ldap", "url"): f'"{ldap.url}"',
            ("directory.ldap", "require_tls"): "false", ("directory.ldap", "start_tls"): "false",
            ("directory.ldap", "bind_dn"): f'"{ldap.admin_dn}"',
            ("directory.ldap", "bind_password_file"): f'"{ldap.password_file}"',
            ("directory.ldap", "base"): f'"{ldap.base}"',
            ("directory.ldap", "disabled_filter"): '"(employeeType=disabled)"',
            ("directory.ldap", "interval_seconds"): "2"})
        (tmp_path / "d").mkdir()
        with d:
            d.mb("account", "add", "bob@example.test", "--password-stdin", input=f"{PASSWORD}\n")
            d.start()
            with d.smtp() as s:
                s.mail("partner@outside.example")
                assert s.rcpt("bob@example.test")[0] == 250
            ldap.set_attribute("bob", "employeeType", "disabled")
            deadline = time.monotonic() + 60
            while True:
                with d.smtp() as s:
                    s.mail("partner@outside.example")
                    code, text = s.rcpt("bob@example.test")
                if code != 250:
                    break
                assert time.monotonic() < deadline, "not suspended within 60s"
                time.sleep(0.2)
            assert code == 550 and text.startswith(b"5.1.1"), (code, text)
            show = subprocess.run([*MB, "account", "show", "bob@example.test", "-c", str(d.config)],
                                  capture_output=True, text=True, timeout=120, check=False).stdout
            assert "state          suspended" in show
            assert "lifecycle.ldap_suspended account=bob@example.test reason=disabled in LDAP" in d.log()
            assert "config.weakened directory.ldap.require_tls = false" in d.log()
