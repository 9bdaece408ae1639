"""Composition root of the MDA role: directory + Maildir store + delivered journal + LMTP over mutual
TLS on the protocol engine. Wiring only."""

from __future__ import annotations

import logging
import math

from mailbastion.config.schema import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.crypto.at_rest import AtRestSealer
from mailbastion.crypto.collect import CertificateCollector
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.smime import TrustBundle
from mailbastion.directory.cache import DirectoryCache
from mailbastion.directory.store import Directory
from mailbastion.mailbox.journal import DeliveredJournal, JournalLocked
from mailbastion.mailbox.lmtp_handler import LmtpHandler
from mailbastion.mailbox.lmtp_server import MdaServer
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.smtp.limits import EdgeLimits
from mailbastion.tls_policy import server_context_from_settings

log = logging.getLogger("mailbastion.mda")
_HEADER_ALLOWANCE = 1024 * 1024  # the gateway adds trace and result fields on top of the size it accepted
_NO_LIMIT = 1_000_000  # counts the LMTP link does not need: its only client is our own gateway


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:2424`, `[::1]:2424` or `localhost:2424` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"expected host:port, got {listen!r}", key="lmtp.listen")
    return host.strip("[]"), int(port)


def mda_limits(settings: Settings) -> EdgeLimits:
    """The LMTP listener's limits: the gateway's message and line limits (plus the header fields it
    adds), `lmtp.timeout` for idle and data, and no error or per-client connection limits (one client,
    our gateway, whose cached sessions live for many deliveries)."""
    smtp = settings.smtp
    return EdgeLimits(
        max_message_size=smtp.max_message_size + _HEADER_ALLOWANCE,
        max_recipients=smtp.max_recipients,
        max_line_length=smtp.max_line_length,
        max_header_size=smtp.max_header_size + _HEADER_ALLOWANCE,
        max_command_length=smtp.max_command_length,
        max_unknown_commands=smtp.max_unknown_commands,
        max_errors=_NO_LIMIT,
        max_transactions=_NO_LIMIT,
        idle_timeout=settings.lmtp.timeout,
        data_timeout=settings.lmtp.timeout,
        max_connections=smtp.max_connections,
        max_connections_per_client=smtp.max_connections,
    )


def build_mda(settings: Settings, *, directory: Directory | None = None) -> MdaServer:
    """The MDA server for `settings`, not yet started (`await server.start()`). Raises ConfigError when the
    TLS files are missing or unusable (the MDA never listens without TLS) or another MDA holds the
    mailbox root."""
    parse_listen(settings.lmtp.listen)
    ctx = server_context_from_settings(settings, "mda")
    root = settings.path(settings.mailbox.root)
    store = MaildirStore(root, default_quota_bytes=settings.mailbox.default_quota_bytes,
                         junk_folder=settings.mailbox.junk_folder)
    # Kept for the queue's retry window (a queue entry is never delivered after it), plus a day.
    retention = math.ceil(settings.spool.max_lifetime_seconds / 86400) + 1
    try:
        journal = DeliveredJournal(root / ".delivered", retention_days=retention)
    except JournalLocked as exc:
        raise ConfigError(str(exc), key="mailbox.root") from None
    # The MDA looks recipients up per RCPT: from the cache, which re-reads the directory only when its change
    # counter moved (a deactivation shows within half a second), never an ORM query per recipient.
    mailboxes = directory or DirectoryCache.from_settings(settings)
    # Encryption at rest and S/MIME certificate collection (crypto/): public keys only, on this internal host.
    keys = KeyStore.from_settings(settings)
    e = settings.encryption
    collector = CertificateCollector(keys, TrustBundle(tuple(settings.path(f) for f in e.extra_ca_files), e.system_ca),
                                     is_local_domain=mailboxes.is_local_domain) if e.enabled else None
    handler = LmtpHandler(mailboxes, store, journal=journal, at_rest=AtRestSealer.from_settings(settings, keys),
                          signed_mail=collector)
    return MdaServer(handler, ctx, listen=settings.lmtp.listen, hostname=settings.server.hostname,
                     limits=mda_limits(settings), drain_timeout=settings.lmtp.drain_timeout)


__all__ = ["build_mda", "mda_limits", "parse_listen"]
