"""The internal host's side of the relay hop: outbound mail to the gateway's relay listener, mutual TLS.

    agent = relay_agent_from_settings(settings, resolver)     # a DeliveryAgent (core/ports.py)
    outcomes = await agent.deliver(request)                    # the gateway's replies, per recipient

Every message goes to `[relay_in] connect` (default: its first `listen` address), TLS from the first byte,
presenting `tls.internal_client_cert` (name "internal"); the gateway's certificate must chain to our CA
(`tls.ca`) and name `[relay_in] server_name` ("gateway-link"): a certificate of our CA for another role is
refused, and nothing goes in clear text. Sessions are reused (the same connection cache as outbound).

A submission service can use it as a queue's remote agent, or synchronously per message: build a
`DeliveryRequest` with the envelope, call `deliver`, and answer the user with the outcome's `reply`, so
that an outbound refusal (malware, spam score) reaches the user as the gateway's clear reply.
"""

from __future__ import annotations

import ssl

from mailbastion.config.schema import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.delivery.connection_cache import SessionCache
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
from mailbastion.dns.resolver import DnsResolver
from mailbastion.tls_policy import client_context

__all__ = ["relay_agent_from_settings", "relay_client_context"]

RELAY_IDLE_SECONDS = 30.0  # our own gateway: keep a session a little longer than Postfix's 2 s for the Internet


def relay_client_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the gateway against our CA (the name is checked after the handshake: the certificate must be
    the gateway role's, whatever address it is reached at) and presents the internal client certificate.
    Raises ConfigError naming the key when a file is missing or not a pair."""
    tls = settings.tls
    source = str(settings.source) if settings.source else None
    for key in ("ca", "internal_client_cert", "internal_client_key"):
        path = settings.path(getattr(tls, key))
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (make it with `mailbastion init` or `mailbastion tls renew`)",
                              file=source, key=f"tls.{key}")
    try:
        return client_context(ca=settings.path(tls.ca), cert=settings.path(tls.internal_client_cert),
                              key=settings.path(tls.internal_client_key), min_version=tls.min_version,
                              check_hostname=False)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"OpenSSL refuses the internal client certificate, key or CA: {exc}", file=source,
                          key="tls.internal_client_cert") from None


def relay_agent_from_settings(settings: Settings, resolver: DnsResolver) -> SmtpDeliveryAgent:
    """The agent that relays to the gateway. Raises ConfigError when `[relay_in]` names no address."""
    address = settings.relay_in.connect_address()
    if address is None:
        raise ConfigError("no relay listener to send outbound mail to: set [relay_in] connect (or listen)",
                          file=str(settings.source) if settings.source else None, key="relay_in.connect")
    d = settings.delivery
    return SmtpDeliveryAgent(resolver, local_hostname=settings.server.hostname, relayhost=address,
                             connect_timeout=d.connect_timeout, command_timeout=d.command_timeout,
                             relay_tls=relay_client_context(settings), relay_name=settings.relay_in.server_name,
                             destination_concurrency=d.destination_concurrency_limit,
                             cache=SessionCache(idle_seconds=RELAY_IDLE_SECONDS, reuse_seconds=d.connection_reuse_seconds))
