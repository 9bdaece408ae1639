"""The directory sync from LDAP or Active Directory (`[directory.ldap]`, ldap3): who may use mail.

    sync = LdapSync(settings.directory.ldap, settings.path)
    people = sync.read()                       # LdapPeople(enabled={address: name}, disabled={...}); blocking
    result = apply_ldap(directory, people)     # accounts suspended / adopted, each change audited

Each `interval_seconds` the scheduler (lifecycle/scheduler.py) reads every entry under `base` matching
`filter` (paged), with its `mail_attribute`, and those matching `disabled_filter` too. Then, for the
accounts of our domains:

- an account whose address LDAP lists is *kept by the sync* from then on (`accounts.source = "ldap"`);
- an account kept by the sync that LDAP now lists as disabled, or no longer lists at all, and is active
  here, is suspended (`account.state_changed`, actor `ldap-sync`, reason naming which). Suspension, not
  leaving: it is reversible, and an administrator (or the people import's end date) decides the rest. A
  user enabled again in LDAP is not re-activated automatically: `account state ADDRESS active` does that.
- accounts the sync never saw (postmaster, role accounts, local-only users) are left alone, and people in
  LDAP without an account here are only counted (the people import or `account add` creates them).

Fail safe: a read that fails, or finds nobody at all while the sync keeps accounts, changes nothing (a
wrong base or filter must not suspend everyone); it is logged as `lifecycle.ldap_failed`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailbastion.core.address import AddressError
from mailbastion.directory.models import Account, AccountState, Domain
from mailbastion.directory.resolution import to_address

if TYPE_CHECKING:
    from mailbastion.config.sections.lifecycle import LdapSyncSection
    from mailbastion.directory.store import Directory

log = logging.getLogger("mailbastion.lifecycle")

ACTOR = "ldap-sync"
PAGE = 500


class LdapUnavailable(Exception):
    """The LDAP server could not be read (connection, TLS, bind or search failed)."""


@dataclass(frozen=True, slots=True)
class LdapPeople:
    enabled: dict[str, str] = field(default_factory=dict)  # address → name
    disabled: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncResult:
    suspended: tuple[str, ...] = ()
    adopted: tuple[str, ...] = ()
    not_here: int = 0  # people in LDAP without an account here


class LdapSync:
    def __init__(self, section: LdapSyncSection, path: Callable[[str], Path]) -> None:
        self.section = section
        self.path = path

    def _connect(self) -> Any:
        import ssl

        import ldap3  # type: ignore[import-untyped]

        s = self.section
        seconds = max(1, math.ceil(s.timeout_seconds))  # ldap3 packs its socket timeouts as integers
        url = urlsplit(s.url)
        secure = url.scheme == "ldaps"
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT,
                        ca_certs_file=str(self.path(s.ca_file)) if s.ca_file else None)
        if s.require_tls and not secure and not s.start_tls:
            raise LdapUnavailable(f"{s.url}: ldap:// without start_tls sends the bind in clear text "
                                  "(directory.ldap.require_tls)")
        server = ldap3.Server(s.url, use_ssl=secure, tls=tls, connect_timeout=seconds, get_info=ldap3.NONE)
        password = None
        if s.bind_dn:
            try:
                password = self.path(s.bind_password_file).read_text().strip()
            except OSError as exc:
                raise LdapUnavailable(f"directory.ldap.bind_password_file: {exc}") from None
        conn = ldap3.Connection(server, user=s.bind_dn or None, password=password, receive_timeout=seconds,
                                read_only=True, raise_exceptions=True)
        conn.open()
        if not secure and s.start_tls:
            conn.start_tls()
        conn.bind()
        return conn

    def _search(self, conn: Any, filter_: str) -> dict[str, str]:
        s = self.section
        entries = conn.extend.standard.paged_search(s.base, filter_, attributes=[s.mail_attribute, s.name_attribute],
                                                    paged_size=PAGE, generator=True)
        found: dict[str, str] = {}
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue
            attrs = entry.get("attributes", {})
            names = attrs.get(s.name_attribute) or [""]
            name = str(names[0] if isinstance(names, list) else names)
            mails = attrs.get(s.mail_attribute) or []
            for mail in mails if isinstance(mails, list) else [mails]:
                try:
                    found[to_address(str(mail)).normalized] = name
                except (AddressError, ValueError):
                    log.info("lifecycle.ldap_skipped dn=%s: %s is not a mail address", entry.get("dn"), mail)
        return found

    def read(self) -> LdapPeople:
        """Everyone `filter` matches, split by `disabled_filter`. Blocking (run it in a thread). Raises
        LdapUnavailable."""
        import ldap3  # type: ignore[import-untyped]

        s = self.section
        try:
            conn = self._connect()
            try:
                everyone = self._search(conn, s.filter)
                disabled = self._search(conn, f"(&{s.filter}{s.disabled_filter})") if s.disabled_filter else {}
            finally:
                conn.unbind()
        except ldap3.core.exceptions.LDAPException as exc:
            raise LdapUnavailable(f"{s.url}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise LdapUnavailable(f"{s.url}: {exc}") from None
        return LdapPeople({a: n for a, n in everyone.items() if a not in disabled}, disabled)


def apply_ldap(directory: Directory, people: LdapPeople) -> SyncResult:
    """See the module docstring. Raises LdapUnavailable when LDAP listed nobody while the sync keeps
    accounts (nothing is changed then)."""
    listed = set(people.enabled) | set(people.disabled)
    with Session(directory.engine) as s:
        ours = set(s.scalars(select(Domain.name)))
        accounts = {a.address: (a.state, a.source) for a in s.scalars(select(Account))}
    kept = {a for a, (_, source) in accounts.items() if source == "ldap"}
    if not listed and kept:
        raise LdapUnavailable(f"LDAP listed nobody, yet the sync keeps {len(kept)} account(s): check "
                              "directory.ldap.base and filter (nothing was changed)")
    adopt = sorted(a for a in listed if a in accounts and accounts[a][1] != "ldap")
    if adopt:  # bookkeeping, not a change of anyone's rights: not audited one by one
        with Session(directory.engine) as s, s.begin():
            s.execute(update(Account).where(Account.address.in_(adopt)).values(source="ldap"))
        log.info("lifecycle.ldap_adopted accounts=%s", ",".join(adopt))
    suspended = []
    for address in sorted(kept | set(adopt)):
        state = accounts[address][0]
        if state != AccountState.ACTIVE:
            continue
        if address in people.disabled:
            why = "disabled in LDAP"
        elif address not in listed:
            why = "no longer in LDAP"
        else:
            continue
        directory.set_state(address, AccountState.SUSPENDED, ACTOR, why)
        suspended.append(address)
        log.warning("lifecycle.ldap_suspended account=%s reason=%s", address, why)
    not_here = sum(1 for a in listed if a not in accounts and a.rpartition("@")[2] in ours)
    return SyncResult(tuple(suspended), tuple(adopt), not_here)


__all__ = ["ACTOR", "LdapPeople", "LdapSync", "LdapUnavailable", "SyncResult", "apply_ldap"]
