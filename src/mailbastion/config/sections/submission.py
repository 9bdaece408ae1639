"""Users send mail: `[submission]` (the internal role's message submission listeners, RFC 6409 / RFC 8314),
the per-account sending limits and the hijacked-account detector."""

from __future__ import annotations

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section
from mailbastion.config.sections.imap import _listeners


class SubmissionLimitsSection(Section):
    """Per authenticated account, over sliding windows. Over a limit: 450 4.7.1 (the client retries later);
    nothing is suspended for a limit alone (the hijack detector does that)."""

    messages_per_hour: int = Field(200, ge=1, le=1_000_000)
    messages_per_day: int = Field(1000, ge=1, le=10_000_000)
    recipients_per_hour: int = Field(500, ge=1, le=1_000_000)
    recipients_per_day: int = Field(2000, ge=1, le=10_000_000)


class HijackSection(Section):
    """Signs of a stolen password. On one, sending is suspended for the account (receiving and logging in go
    on), the audit log says why, the administrator is alerted; `mailbastion account unsuspend` lifts it."""

    enabled: bool = True
    # Sudden fan-out: this many distinct recipients within fanout_window_seconds.
    fanout_recipients: int = Field(150, ge=2, le=1_000_000)
    fanout_window_seconds: int = Field(600, ge=10, le=86_400)
    # Logins from many new client addresses (IPv4 /24, IPv6 /64 not seen for the account before) within the window.
    new_clients: int = Field(6, ge=2, le=10_000)
    new_clients_window_seconds: int = Field(3600, ge=60, le=7 * 86_400)
    # A burst of bounces: this many of the account's messages refused for good (5xx from the gateway's
    # outbound checks or at relay time) within bounce_window_seconds.
    bounces: int = Field(20, ge=2, le=100_000)
    bounce_window_seconds: int = Field(3600, ge=60, le=86_400)
    # How the administrator hears of it: "postmaster" (a message to postmaster@<the account's domain> through
    # our own path, and the log line) or "log" (the `submission.alarm` log line only).
    alert: str = Field("postmaster", pattern="^(postmaster|log)$")


class SubmissionSection(Section):
    """Message submission in the internal role (and all-in-one; never on the gateway): AUTH PLAIN/LOGIN under
    TLS against the directory, the sender bound to the login, DKIM signing, then the relay hop to the gateway."""

    enabled: bool = True
    listen: list[str] = ["127.0.0.1:2587"]  # STARTTLS required before AUTH; 587 in production
    listen_tls: list[str] = ["127.0.0.1:2465"]  # implicit TLS (RFC 8314); 465 in production
    max_message_size: int = Field(26_214_400, ge=1024, le=1 << 31)
    max_recipients: int = Field(100, ge=1, le=10_000)  # per message
    max_connections: int = Field(500, ge=1, le=100_000)
    max_connections_per_client: int = Field(20, ge=1, le=10_000)
    idle_timeout: float = Field(300.0, gt=0, le=3600)
    # The outbox: messages the gateway could not take at once wait here (fsynced) and are relayed later.
    spool_dir: str = "spool-submission"
    relay_timeout_seconds: float = Field(120.0, gt=0, le=600)  # the synchronous hand-over to the gateway
    add_missing_headers: bool = True  # Date and Message-ID when the client gave none (RFC 6409 §8.2, §8.3)
    limits: SubmissionLimitsSection = Field(default_factory=SubmissionLimitsSection)
    hijack: HijackSection = Field(default_factory=HijackSection)

    @field_validator("listen", "listen_tls")
    @classmethod
    def _host_port(cls, values: list[str]) -> list[str]:
        return _listeners(values)


__all__ = ["HijackSection", "SubmissionLimitsSection", "SubmissionSection"]
