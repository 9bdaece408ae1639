"""Composition root of the MDA role: directory + Maildir store + LMTP over mutual TLS. Wiring only."""

from __future__ import annotations

import logging
import ssl

from mailbastion.config.schema import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.directory.store import Directory
from mailbastion.mailbox.lmtp_server import LmtpHandler, MdaServer
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.smtp.tls import server_context

log = logging.getLogger("mailbastion.mda")
_HEADER_ALLOWANCE = 1024 * 1024  # the gateway adds trace and result fields on top of the size it accepted


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:2424`, `[::1]:2424` or `localhost:2424` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"expected host:port, got {listen!r}", key="lmtp.listen")
    return host.strip("[]"), int(port)


def build_mda(settings: Settings, *, directory: Directory | None = None) -> MdaServer:
    """The MDA server for `settings`, not yet started (`await server.start()`). Raises ConfigError when the
    TLS files are missing: the MDA never listens without TLS."""
    tls = settings.tls
    try:
        ctx = server_context(settings.path(tls.mda_cert), settings.path(tls.mda_key), min_version=tls.min_version,
                             client_ca=settings.path(tls.ca))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the MDA certificate, key or CA: {exc}", key="tls.mda_cert") from None
    if not settings.lmtp.require_client_cert:
        # Weakened on purpose by the site: clients without a certificate may connect, and their
        # X-Mailbastion-Junk headers are then ignored (has_verified_client_cert is False).
        ctx.verify_mode = ssl.CERT_OPTIONAL
        log.warning("config.weakened lmtp.require_client_cert=false: LMTP clients need no certificate")
    store = MaildirStore(settings.path(settings.mailbox.root),
                         default_quota_bytes=settings.mailbox.default_quota_bytes,
                         junk_folder=settings.mailbox.junk_folder)
    handler = LmtpHandler(directory or Directory.from_settings(settings), store,
                          max_recipients=settings.smtp.max_recipients)
    host, port = parse_listen(settings.lmtp.listen)
    return MdaServer(handler, ctx, host=host, port=port, hostname=settings.server.hostname,
                     data_size_limit=settings.smtp.max_message_size + _HEADER_ALLOWANCE,
                     timeout=settings.lmtp.timeout, drain_timeout=settings.lmtp.drain_timeout)


__all__ = ["build_mda", "parse_listen"]
