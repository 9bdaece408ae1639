"""`[lifecycle]`: accounts over time (issue 13): start and end dates applied by the internal role's
scheduler, what inbound mail for a leaver gets, archive, retention and the reservation of a used address."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mailbastion.config.sections.base import Section


class LifecycleSection(Section):
    enabled: bool = True  # the scheduler in the internal role
    check_interval_seconds: float = Field(60.0, gt=0, le=3600)  # dates are applied within one interval
    # Inbound mail for a leaver: "refuse" answers 550 5.1.1 naming the successor (when there is one);
    # "forward" delivers it to the successor for `forward_days`, then refuses.
    leaver_policy: Literal["refuse", "forward"] = "refuse"
    forward_days: int = Field(30, ge=0, le=3650)
    # While a leaver's mail is forwarded: senders get an auto-reply naming the successor (RFC 3834), at most
    # one per sender every auto_reply_days; never to a null sender, a list, bulk or auto-submitted mail.
    leaver_auto_reply: bool = True
    auto_reply_days: int = Field(7, ge=1, le=365)
    # After leaving, the mailbox is exported to archive_dir (Maildir tarball + SHA-256 file) and removed;
    # the archive is kept retention_days, then deleted with the account; the address stays reserved
    # reserve_days after that before `account add` may give it to someone else.
    archive_after_days: int = Field(30, ge=0, le=3650)
    archive_dir: str = "archive"  # relative paths are below data_dir; created 0700
    retention_days: int = Field(365, ge=0, le=36500)
    reserve_days: int = Field(365, ge=0, le=36500)
    # TESTING AID, never in production: a file holding seconds added to "now" (core/clock.py OffsetClock).
    testing_clock_offset_file: str = ""

    def weakened(self) -> list[str]:
        if self.testing_clock_offset_file:
            return [(f"lifecycle.testing_clock_offset_file = {self.testing_clock_offset_file!r} (a testing aid: "
                     "'now' is moved by that file)")]
        return []


class LdapSyncSection(Section):
    """`[directory.ldap]`: an LDAP or Active Directory server as a source of truth for who may use mail. An
    account it provided that is disabled (`disabled_filter`) or gone there is suspended here within one
    `interval_seconds` (lifecycle/ldap_sync.py)."""

    enabled: bool = False
    url: str = ""  # ldaps://ldap.example.org (or ldap:// with start_tls)
    start_tls: bool = True  # for ldap:// URLs; ldaps:// is TLS from the first byte
    ca_file: str = ""  # the CA of the server's certificate; empty: the system's
    require_tls: bool = True  # false only for a loopback test server (reported by config.weakened)
    bind_dn: str = ""  # empty: anonymous
    bind_password_file: str = ""  # a file holding the password (mode 0600), never the password itself
    base: str = ""
    filter: str = "(objectClass=inetOrgPerson)"  # the people whose mail we host
    # Matches the disabled ones among them, e.g. OpenLDAP ppolicy "(pwdAccountLockedTime=*)" or Active
    # Directory "(userAccountControl:1.2.840.113556.1.4.803:=2)"; empty: none is disabled, only removal counts.
    disabled_filter: str = "(pwdAccountLockedTime=*)"
    mail_attribute: str = "mail"
    name_attribute: str = "cn"
    interval_seconds: float = Field(300.0, gt=0, le=86400)
    timeout_seconds: float = Field(10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _complete(self) -> LdapSyncSection:
        if self.enabled:
            if not self.url.startswith(("ldap://", "ldaps://")):
                raise ValueError("directory.ldap.url must be an ldap:// or ldaps:// URL when enabled")
            if not self.base:
                raise ValueError("directory.ldap.base is required when enabled")
            if self.bind_dn and not self.bind_password_file:
                raise ValueError("directory.ldap.bind_password_file is required with bind_dn")
        return self

    def weakened(self) -> list[str]:
        if self.enabled and not self.require_tls:
            return ["directory.ldap.require_tls = false (the directory sync may read LDAP in clear text)"]
        return []


__all__ = ["LdapSyncSection", "LifecycleSection"]
