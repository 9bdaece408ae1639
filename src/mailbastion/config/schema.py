"""The whole configuration: one TOML file, one pydantic model per section, unknown keys refused."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr

from mailbastion.config.sections.antivirus import AntivirusSection
from mailbastion.config.sections.aup import AupSection
from mailbastion.config.sections.auth import AuthSection
from mailbastion.config.sections.base import Section
from mailbastion.config.sections.core import (
    AuditSection,
    DeliverySection,
    DirectorySection,
    DnsSection,
    LmtpSection,
    MailboxSection,
    RelaySection,
    ServerSection,
    SmtpSection,
    SpoolSection,
    TlsSection,
)
from mailbastion.config.sections.encryption import EncryptionSection
from mailbastion.config.sections.imap import ImapSection, LoginSection
from mailbastion.config.sections.lifecycle import LifecycleSection
from mailbastion.config.sections.outbound import OutboundSection
from mailbastion.config.sections.phish_report import PhishReportSection
from mailbastion.config.sections.relay_in import RelayInSection
from mailbastion.config.sections.portal import PortalSection
from mailbastion.config.sections.spam import SpamSection
from mailbastion.config.sections.srs import SrsSection
from mailbastion.config.sections.submission import SubmissionSection
from mailbastion.config.sections.training import TrainingSection
from mailbastion.config.sections.split import FirewallSection, MapPushSection, MetricsSection


class Settings(Section):
    server: ServerSection = Field(default_factory=ServerSection)
    smtp: SmtpSection = Field(default_factory=SmtpSection)
    tls: TlsSection = Field(default_factory=TlsSection)
    relay: RelaySection = Field(default_factory=RelaySection)
    lmtp: LmtpSection = Field(default_factory=LmtpSection)
    spool: SpoolSection = Field(default_factory=SpoolSection)
    directory: DirectorySection = Field(default_factory=DirectorySection)
    audit: AuditSection = Field(default_factory=AuditSection)
    mailbox: MailboxSection = Field(default_factory=MailboxSection)
    dns: DnsSection = Field(default_factory=DnsSection)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    outbound: OutboundSection = Field(default_factory=OutboundSection)
    relay_in: RelayInSection = Field(default_factory=RelayInSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    antivirus: AntivirusSection = Field(default_factory=AntivirusSection)
    spam: SpamSection = Field(default_factory=SpamSection)
    encryption: EncryptionSection = Field(default_factory=EncryptionSection)
    map_push: MapPushSection = Field(default_factory=MapPushSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    firewall: FirewallSection = Field(default_factory=FirewallSection)
    portal: PortalSection = Field(default_factory=PortalSection)
    imap: ImapSection = Field(default_factory=ImapSection)
    login: LoginSection = Field(default_factory=LoginSection)
    lifecycle: LifecycleSection = Field(default_factory=LifecycleSection)
    submission: SubmissionSection = Field(default_factory=SubmissionSection)
    aup: AupSection = Field(default_factory=AupSection)
    srs: SrsSection = Field(default_factory=SrsSection)
    phish_report: PhishReportSection = Field(default_factory=PhishReportSection)
    training: TrainingSection = Field(default_factory=TrainingSection)

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def base_dir(self) -> Path:
        """data_dir, resolved against the configuration file's folder."""
        anchor = self._source.parent if self._source else Path.cwd()
        return (anchor / self.server.data_dir).resolve()

    def path(self, relative: str) -> Path:
        """A configured path: absolute as given, else below data_dir."""
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def directory_url(self) -> str:
        """[directory] url, a relative SQLite path resolved below data_dir. Raises ConfigError on a gateway
        (server.role = "gateway"): the DMZ host has no directory, and a command that would open one there
        (`account add`, `domain add`) must not create an empty one."""
        if self.server.role == "gateway":
            from mailbastion.core.errors import ConfigError

            raise ConfigError("this host is the gateway (server.role = \"gateway\"): it has no directory; run "
                              "directory commands on the internal host", file=str(self._source) if self._source
                              else None, key="server.role")
        url = self.directory.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            return prefix + str(self.path(url[len(prefix):]))
        return url

    def sqlite_file(self, url: str) -> Path | None:
        """The file of a `sqlite:///` URL (relative paths below data_dir); None for another database."""
        prefix = "sqlite:///"
        return self.path(url[len(prefix):]) if url.startswith(prefix) else None

    @property
    def audit_url(self) -> str:
        """[audit] url, a relative SQLite path resolved below data_dir."""
        url, prefix = self.audit.url, "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            return prefix + str(self.path(url[len(prefix):]))
        return url
