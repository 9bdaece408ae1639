"""Sections of the message path: server, listeners, limits, relay, TLS, spool, directory, mailbox, DNS."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from mailbastion.config.sections.base import Section
from mailbastion.config.sections.lifecycle import LdapSyncSection


class ServerSection(Section):
    hostname: str = "localhost.localdomain"  # our name in the banner, Received and DSNs
    # Which part of a deployment this host is: "all" (one machine), "gateway" (the DMZ MTA: no directory,
    # no mailboxes, no CA key) or "internal" (the MDA, the directory, the CA). Keys a role does not use are
    # refused at load (config/roles.py); `serve` runs this role unless --role says otherwise.
    role: Literal["all", "gateway", "internal"] = "all"
    # `serve` started as root binds its ports and then runs as this user (apps/privileges.py); "root" keeps
    # root privileges and is logged as config.weakened.
    user: str = Field("mailbastion", min_length=1, pattern=r"^[a-z_][a-z0-9_-]*\$?$")
    data_dir: str = "."  # relative paths below are relative to this (itself relative to the config file)
    workers: int = Field(1, ge=1, le=64)  # SMTP acceptor processes behind one listening socket
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str | None = None  # None: standard error


class SmtpSection(Section):
    """The inbound (MX) listener of the gateway."""

    listen: list[str] = ["127.0.0.1:2525"]
    implicit_tls_listen: list[str] = []  # SMTPS-style listeners (rare for MX)
    banner: str = "ESMTP mailbastion"
    max_message_size: int = Field(25 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1, le=10000)
    max_line_length: int = Field(2048, ge=1000)  # data lines; RFC 5321 §4.5.3.1.6 says 1000 incl. CRLF
    max_header_size: int = Field(1024 * 1024, ge=64 * 1024)  # the header section (Exim's header_maxsize)
    max_command_length: int = Field(512, ge=512)  # RFC 5321 §4.5.3.1.4
    max_unknown_commands: int = Field(5, ge=1)
    max_errors: int = Field(10, ge=1)
    max_transactions_per_connection: int = Field(100, ge=1)
    idle_timeout: float = Field(300.0, gt=0)  # RFC 5321 §4.5.3.2.7 suggests 5 minutes
    data_timeout: float = Field(600.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    max_connections_per_client: int = Field(20, ge=1)
    require_starttls: bool = False  # an MX must accept plain text from the internet (RFC 3207 §4)
    proxy_protocol: bool = False  # behind a load balancer: real client address from PROXY v1/v2
    proxy_protocol_from: list[str] = []  # only these load balancers may send PROXY headers
    xclient_hosts: list[str] = []  # Postfix XCLIENT accepted from these addresses only (bench)
    max_hops: int = Field(50, ge=5)  # Received headers before we call it a loop (Postfix hopcount_limit)
    # Postscreen-style pregreet test: seconds to wait before the greeting; a client that talks in that
    # time is refused (554 5.5.0). 0: only what arrives before the greeting is sent is caught.
    greet_pause: float = Field(0.0, ge=0, le=30)
    postmaster_domain: str | None = None  # RCPT TO:<Postmaster>; None: our domain above server.hostname


class TlsSection(Section):
    """Certificates of every listener; the TLS policy itself (Mozilla intermediate) is in tls_policy.py."""

    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    cert: str = "tls/gateway.crt"  # the public-facing certificate (MX, and later submission and IMAP)
    key: str = "tls/gateway.key"
    ca: str = "tls/ca.crt"  # the private CA for the gateway <-> MDA link
    ca_key: str = "tls/ca.key"  # its key: only where `mailbastion tls renew` runs (not on a DMZ gateway)
    gateway_client_cert: str = "tls/gateway-client.crt"
    gateway_client_key: str = "tls/gateway-client.key"
    mda_cert: str = "tls/mda.crt"
    mda_key: str = "tls/mda.key"
    # The gateway's server certificate for the internal host's connections (both from the private CA, name
    # "gateway-link"): the relay listener for outbound mail ([relay_in]) and the recipient map push
    # ([map_push]); the internal host presents its client certificate (name "internal") on both.
    link_cert: str = "tls/gateway-link.crt"
    link_key: str = "tls/gateway-link.key"
    internal_client_cert: str = "tls/internal-client.crt"
    internal_client_key: str = "tls/internal-client.key"
    # `tls status` exits 1, and start-up logs a warning, when a certificate expires within this many days.
    expiry_warning_days: int = Field(30, ge=1, le=365)


# Networks that never route on the Internet: listing them cannot make an open relay.
_NOT_PUBLIC: tuple[IPv4Network | IPv6Network, ...] = tuple(ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918 private
    "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",  # loopback, link-local (RFC 3927), CGNAT (RFC 6598)
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation (RFC 5737)
    "::1/128", "fe80::/10", "fc00::/7", "2001:db8::/32",  # loopback, link-local, ULA (RFC 4193), documentation
))
# With allow_public, a site may list its own outbound hosts: a single host up to a small prefix.
MAX_PUBLIC_PREFIX = {4: 24, 6: 56}


def _is_not_public(net: IPv4Network | IPv6Network) -> bool:
    if isinstance(net, IPv6Network) and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        net = IPv4Network((net.network_address.ipv4_mapped, net.prefixlen - 96))  # ::ffff:10.0.0.0/104
    return any(net.version == n.version and net.subnet_of(n) for n in _NOT_PUBLIC)  # type: ignore[arg-type]


class RelaySection(Section):
    """Who may relay without authentication. Default deny; a public network is refused at load (an open
    relay) unless `allow_public = true`, and even then only up to a /24 (IPv4) or /56 (IPv6)."""

    # Declared before `networks`, whose check reads it.
    allow_public: bool = False  # true: networks may name the site's own public hosts (small prefixes only)
    networks: list[IPv4Network | IPv6Network] = []

    @field_validator("networks")
    @classmethod
    def _no_open_relay(cls, networks: list[IPv4Network | IPv6Network],
                       info: ValidationInfo) -> list[IPv4Network | IPv6Network]:
        for net in networks:
            if net.prefixlen == 0:
                raise ValueError(f"{net} lets every address on the Internet relay through us (an open relay); "
                                 "list only the networks of your own hosts")
            if _is_not_public(net):
                continue
            limit = MAX_PUBLIC_PREFIX[net.version]
            if not info.data.get("allow_public", False):
                raise ValueError(f"{net} is a public network: anyone there could relay through us (an open "
                                 "relay). List private, loopback, link-local or CGNAT networks, or, for your own "
                                 f"public hosts, set relay.allow_public = true (at most a /{limit})")
            if net.prefixlen < limit:
                raise ValueError(f"{net} is a public network wider than a /{limit}: even with "
                                 "relay.allow_public = true only single hosts and small prefixes may relay")
        return networks


class LmtpSection(Section):
    listen: str = "127.0.0.1:2424"  # where the MDA listens
    connect: str | None = None  # where the gateway delivers; None = the listen address
    require_client_cert: bool = True  # mutual TLS on the gateway <-> MDA link
    timeout: float = Field(120.0, gt=0)
    drain_timeout: float = Field(30.0, ge=0)  # MDA stop: wait this long for deliveries in progress
    # The all-in-one process (`server.role = "all"`) only: its queue manager hands local mail to the MDA in the
    # same process (mailbox/direct.py: the link's transaction without TLS or a socket; the same look-ups,
    # journal, folders and replies). false: over the LMTP link, as a split deployment does. Either way the MDA
    # listens on `listen`. With `server.workers` > 1, direct delivery keeps the MDA in the parent process.
    direct: bool = True


class SpoolSection(Section):
    dir: str = "spool"
    min_free_bytes: int = Field(100 * 1024 * 1024, ge=0)  # below this, 452 4.3.1
    max_lifetime_seconds: int = Field(5 * 86400, ge=60)  # Postfix maximal_queue_lifetime
    bounce_lifetime_seconds: int = Field(5 * 86400, ge=60)
    min_backoff_seconds: int = Field(300, ge=1)  # Postfix minimal_backoff_time
    max_backoff_seconds: int = Field(4000, ge=1)  # Postfix maximal_backoff_time
    # The full scan of incoming/ and deferred/ (due retries, what a writer's wake-up missed); new mail is
    # picked up at once through the spool's wake-up FIFO (spool/wakeup.py).
    scan_interval_seconds: float = Field(1.0, gt=0)
    delivery_concurrency: int = Field(20, ge=1)
    # A "delayed" DSN (RFC 3464 action=delayed) once a message is still queued after this long, once per
    # message; 0 = never (Postfix's delay_warning_time default). 4 hours, as sendmail: senders of mail
    # stuck behind an unreachable host learn of it the same day, not after the 5-day lifetime.
    delay_warning_seconds: int = Field(4 * 3600, ge=0)


class DirectorySection(Section):
    url: str = "sqlite:///directory.db"  # relative sqlite paths are below data_dir
    recipient_map: str = "recipient-map.json"  # the address-only map the gateway reads
    ldap: LdapSyncSection = Field(default_factory=LdapSyncSection)  # a source of truth (issue 13)


class AuditSection(Section):
    """The audit log's own database: the gateway records quarantine releases here without ever opening
    the directory database. PostgreSQL works too; the same URL as [directory] url keeps both in one
    database (a change and its record then commit in one transaction)."""

    url: str = "sqlite:///audit.db"  # relative sqlite paths are below data_dir; the file is created 0600


class MailboxSection(Section):
    root: str = "mail"  # Maildirs: <root>/<domain>/<local>/
    default_quota_bytes: int = Field(1024 * 1024 * 1024, ge=0)  # 0 = unlimited
    junk_folder: str = "Junk"
    recipient_delimiter: str = "+"


class DnsSection(Section):
    nameservers: list[str] = []  # empty: the system resolver (/etc/resolv.conf)
    port: int = Field(53, ge=1, le=65535)
    timeout: float = Field(5.0, gt=0)
    cache_size: int = Field(10000, ge=0)


class DeliverySection(Section):
    """Outbound delivery to remote domains (the queue manager's SMTP agent)."""

    relayhost: str | None = None  # "host" or "host:port": send all remote mail there, no MX lookup
    remote_port: int = Field(25, ge=1, le=65535)  # port of remote MX hosts (tests point it elsewhere)
    connect_timeout: float = Field(30.0, gt=0)
    command_timeout: float = Field(300.0, gt=0)  # RFC 5321 §4.5.3.2: minutes per command, 10 for DATA end
    max_mx_hosts: int = Field(5, ge=1, le=20)  # MX hosts tried per domain per attempt
    # Sessions at once to one destination domain (Postfix default_destination_concurrency_limit).
    destination_concurrency_limit: int = Field(20, ge=1, le=1000)
    # The connection cache (Postfix smtp_connection_cache_*): a session carries further messages to the
    # same MX while idle for less than `connection_cache_idle_seconds`, for at most
    # `connection_reuse_seconds` (smtp_connection_reuse_time_limit). 0 idle seconds: no reuse.
    connection_cache_idle_seconds: float = Field(2.0, ge=0, le=300)
    connection_reuse_seconds: float = Field(300.0, gt=0, le=3600)
    # Delivered messages remembered (Message-ID, ENVID, queue id) so that a bounce that comes back for one
    # is matched to our queue entry (`outbound.bounce` log line). 0: not kept.
    sent_log_days: int = Field(7, ge=0, le=60)
    sent_log_db: str = "sent-log.db"  # below data_dir
