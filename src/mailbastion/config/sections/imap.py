"""Users read mail: `[imap]` (Dovecot run by the internal role on our Maildirs) and `[login]` (failed-login
throttling, shared by IMAP and submission)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _listeners(values: list[str]) -> list[str]:
    for value in values:
        m = _HOST_PORT.match(value)
        if m is None or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:993 or [::1]:993)")
    return values


class ImapLearnSection(Section):
    """Moving a message into Junk teaches the classifier spam; moving it out of Junk teaches ham."""

    enabled: bool = True
    max_per_hour: int = Field(200, ge=1, le=100_000)  # per user; more moves in an hour are logged, not learned


class ImapSection(Section):
    """Dovecot, run by `mailbastion serve` in the internal (mda) and all-in-one roles. Its whole configuration
    is written below data_dir from these settings; /etc/dovecot is never read or touched."""

    enabled: bool = True
    listen: list[str] = ["127.0.0.1:2143"]  # plain IMAP: STARTTLS required before LOGIN/AUTHENTICATE
    listen_tls: list[str] = ["127.0.0.1:2993"]  # implicit TLS (RFC 8314); 993 in production
    # The system user that owns the Maildirs; Dovecot's mail processes run as it (never as root).
    mail_user: str = "mailbastion"
    base_dir: str = "imap/run"  # Dovecot's runtime folder (sockets, pid); below data_dir when relative
    # Sessions of an account that stopped being active (suspended, left, disabled) are closed within this.
    kick_interval_seconds: float = Field(10.0, gt=0, le=60)
    max_connections_per_user: int = Field(20, ge=1, le=1000)  # per user and client address
    # Dovecot's own delay per client address after failed logins (2, 4, 8, then 15 s: its "auth penalty"),
    # on top of [login]'s throttle. false where many users share one address (an office behind one NAT, a
    # webmail host): one person's typing errors then do not slow everyone's logins down, and [login] still
    # throttles, locks out and audits per account and per address.
    auth_penalty: bool = True
    dovecot: str = "/usr/sbin/dovecot"
    doveadm: str = "/usr/bin/doveadm"
    learn: ImapLearnSection = Field(default_factory=ImapLearnSection)

    @field_validator("listen", "listen_tls")
    @classmethod
    def _host_port(cls, values: list[str]) -> list[str]:
        return _listeners(values)

    @field_validator("mail_user")
    @classmethod
    def _user_name(cls, value: str) -> str:
        if value == "root" or not _USER.match(value):
            raise ValueError(f"{value!r}: name a system user other than root (Dovecot never reads mail as root)")
        return value


class LoginSection(Section):
    """Failed-login throttling for every password check of users (IMAP, submission): per account and per
    client address, with a lockout that doubles each time it recurs (back-off). Every lockout is an entry
    in the audit log. A lockout refuses even the right password until it ends."""

    max_failures_per_account: int = Field(10, ge=1, le=10_000)  # within window_seconds
    max_failures_per_client: int = Field(30, ge=1, le=100_000)  # within window_seconds
    window_seconds: int = Field(900, ge=10, le=86_400)
    lockout_seconds: int = Field(300, ge=1, le=86_400)  # the first lockout; each next one doubles
    max_lockout_seconds: int = Field(3600, ge=1, le=7 * 86_400)


__all__ = ["ImapLearnSection", "ImapSection", "LoginSection"]
