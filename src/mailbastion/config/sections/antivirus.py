"""Anti-virus engines, attachment policy, freshness and the quarantine. Owned by the anti-virus issue.

    [antivirus]
    workstation_engine = "microsoft"        # the workstations' product: no mail engine may be only that
    required = ["clamav", "attachments"]    # empty: every configured engine is required (fail closed)
    [antivirus.clamav]
    enabled = "auto"                         # on whenever clamd answers with signatures
    socket = "/run/clamav/clamd.ctl"         # or address = "127.0.0.1:3310"
    [antivirus.yara]
    rule_dirs = ["yara"]                    # our shipped rules are always loaded first
    [antivirus.attachments]
    on_blocked = "reject"                   # or "quarantine"
    [antivirus.archives]
    max_depth = 4
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mailbastion.config.sections.base import Section

EngineName = Literal["clamav", "yara", "attachments", "icap"]
PolicyAction = Literal["reject", "quarantine", "accept"]


class ClamavSection(Section):
    # "auto": used whenever clamd answers (checked at start, on reload and every freshness_interval; logged when
    # it comes on or goes away); while it does not, measure 2 is not met and stale_policy decides what mail gets.
    # true: clamd must answer, or mail gets 451. false: off (then the gateway starts only with another vendor's
    # engine, or with stale_policy = "alarm_only").
    enabled: bool | Literal["auto"] = "auto"
    socket: str | None = "/var/run/clamav/clamd.ctl"  # unix socket of clamd (Debian default)
    address: str | None = None  # "127.0.0.1:3310" instead of the socket (loopback or a trusted scanner host)
    connect_timeout: float = Field(2.0, gt=0)
    scan_timeout: float = Field(60.0, gt=0)
    pool_size: int = Field(8, ge=1, le=256)  # concurrent connections to clamd (clamd MaxThreads is 12 by default)
    chunk_size: int = Field(64 * 1024, ge=1024, le=4 * 1024 * 1024)
    stream_max_length: int = Field(25 * 1024 * 1024, ge=1024)  # at most clamd's StreamMaxLength (Debian: 25M)
    max_signature_age_hours: float = Field(24.0, gt=0)  # over this, the freshness alarm rings
    # A clamd with local databases only (.ndb/.hdb ..., no daily/main .cvd) reports no build date. "stale": its age
    # is unknown, so stale_policy applies; "newest_file": its age is that of the newest file in database_dir
    # (which must be readable here, i.e. clamd on this host). Sites that build their own databases use the latter.
    undated_signatures: Literal["stale", "newest_file"] = "stale"
    database_dir: str = "/var/lib/clamav"  # clamd's DatabaseDirectory, read only for undated_signatures
    # clamd gets each decoded part once, and the raw message only when the MIME is malformed. True also sends
    # every raw message: for signature sets written against whole mails (third-party "Email." and phishing
    # sets); it about doubles clamd's work (docs/antivirus.md has the figures).
    scan_whole_message: bool = False


class YaraSection(Section):
    enabled: bool = True
    rule_dirs: list[str] = []  # site rule folders (relative to data_dir); our own rules are always loaded
    rules_url: str | None = None  # `av update-rules` default source (a .yar or .zip of .yar files)
    include_shipped: bool = True
    reload_interval: float = Field(30.0, gt=0)  # seconds between checks for changed rule files
    max_signature_age_hours: float | None = None  # rules change rarely: no alarm unless set


class AttachmentsSection(Section):
    enabled: bool = True
    on_blocked: PolicyAction = "reject"  # executables, scripts, disk images, shortcuts
    on_macro: PolicyAction = "quarantine"  # Office documents with VBA/XLM macros
    on_pdf_javascript: PolicyAction = "quarantine"
    on_encrypted: PolicyAction = "quarantine"  # archives or documents we cannot open cannot be scanned
    on_archive_limit: PolicyAction = "reject"  # archive bombs: over size, ratio, count or depth limits
    on_unscannable: PolicyAction = "quarantine"  # archive formats we cannot read (e.g. rar without a tool)
    on_malformed: PolicyAction = "accept"  # ambiguous MIME is scored (AV_MIME_MALFORMED), not refused
    blocked_types: list[str] = [
        "pe", "elf", "macho", "msi", "script", "shortcut", "disk_image", "html_application", "java", "chm",
        "registry", "office_addin",
    ]
    # Not blocked by default: "unix_script", a file that starts with #! and holds no Windows script command (a
    # shell or Perl script sent to a technical list: opening it from a mail client runs nothing). Add it here to
    # refuse those too; names a click would run (.sh, .py, .pl, .command ...) stay "script" and blocked.
    allowed_types: list[str] = []  # removes entries from blocked_types for this site
    max_parts: int = Field(1000, ge=1)  # MIME parts walked before the message is called an archive bomb


class ArchiveLimits(Section):
    max_depth: int = Field(4, ge=1, le=16)  # nested archives opened
    max_members: int = Field(1000, ge=1)  # members across the whole message
    # As ClamAV's MaxFileSize / MaxScanSize: what one message may unpack in memory, whatever it claims.
    max_member_size: int = Field(25 * 1024 * 1024, ge=1024)  # one member, uncompressed
    max_total_size: int = Field(100 * 1024 * 1024, ge=1024)  # all members of the message, uncompressed
    max_ratio: float = Field(100.0, ge=2)  # uncompressed / compressed, per member (past the first MiB)


class IcapSection(Section):
    url: str | None = None  # icap://127.0.0.1:1344/avscan ; None = not configured
    vendor: str | None = None  # the product behind it, e.g. "sophos", "kaspersky" (required with url: measure 2)
    timeout: float = Field(60.0, gt=0)


class QuarantineSection(Section):
    """Shared by anti-virus and the spam filter."""

    dir: str = "quarantine"  # below data_dir; 0700, files 0600
    # Where releases and deletions are audited; None = the directory database (the all-in-one default). A split
    # deployment points this at the shared audit database (PostgreSQL) reachable from where admins run the CLI.
    audit_url: str | None = None
    retention_days: int = Field(30, ge=1)


class AntivirusSection(Section):
    enabled: bool = True
    # The workstations' product (vendor name, e.g. "microsoft", "sophos", "clamav"). Measure 2: the gateway
    # refuses to start unless some mail engine is from another vendor. None = not declared (refuses too).
    workstation_engine: str | None = "microsoft"
    required: list[EngineName] = []  # empty: every configured engine is required (fail closed)
    engine_timeout: float = Field(90.0, gt=0)  # the whole anti-virus stage, all engines in parallel
    # Messages unpacked and scanned at once; the rest wait. Bounds memory: each may unpack archives.max_total_size.
    max_concurrent_scans: int = Field(8, ge=1, le=1024)
    # While a signature engine is stale (over its age limit, or of unknown age) or no engine meets measure 2 (ClamAV
    # off, without signatures yet, or down while "auto"): "soft_reject" (451 until it is fixed; senders retry),
    # "hold" (accept into the quarantine), or "alarm_only" (accept what YARA and the attachment policy passed, and
    # log the alarm; the only setting under which the gateway starts with no vendor engine configured at all).
    stale_policy: Literal["hold", "soft_reject", "alarm_only"] = "soft_reject"
    freshness_interval: float = Field(300.0, gt=0)  # seconds between signature age checks
    cache_size: int = Field(10000, ge=0)  # results cached by content digest; 0 = no cache
    cache_ttl: float = Field(3600.0, ge=0)
    clamav: ClamavSection = Field(default_factory=ClamavSection)
    yara: YaraSection = Field(default_factory=YaraSection)
    attachments: AttachmentsSection = Field(default_factory=AttachmentsSection)
    archives: ArchiveLimits = Field(default_factory=ArchiveLimits)
    icap: IcapSection = Field(default_factory=IcapSection)
    quarantine: QuarantineSection = Field(default_factory=QuarantineSection)

    @field_validator("workstation_engine")
    @classmethod
    def _vendor_lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @model_validator(mode="after")
    def _clamd_endpoint(self) -> AntivirusSection:
        if self.clamav.enabled and not (self.clamav.socket or self.clamav.address):
            raise ValueError("antivirus.clamav: set socket or address (or enabled = false)")
        if self.icap.url and not self.icap.vendor:
            raise ValueError("antivirus.icap.vendor: name the product behind the ICAP service (e.g. \"sophos\"), "
                             "so it can be compared with the workstations' engine")
        return self

    def configured_engines(self) -> list[str]:
        out: list[str] = []
        if self.clamav.enabled is not False:  # true or "auto"
            out.append("clamav")
        if self.yara.enabled:
            out.append("yara")
        if self.attachments.enabled:
            out.append("attachments")
        if self.icap.url:
            out.append("icap")
        return out

    def required_engines(self) -> frozenset[str]:
        """The engines whose failure means 451: the configured list, or every configured engine."""
        configured = self.configured_engines()
        return frozenset(self.required) & set(configured) if self.required else frozenset(configured)

    def weakened(self) -> list[str]:
        """Settings weaker than the secure defaults, for `config.weakened` at start-up (loader.weakened)."""
        out: list[str] = []
        d = AntivirusSection()
        if self.required and self.required_engines() != frozenset(self.configured_engines()):
            out.append(f"antivirus.required = {sorted(self.required)} (other engines may fail open)")
        if self.stale_policy == "alarm_only":
            out.append("antivirus.stale_policy = \"alarm_only\" (mail accepted with stale signatures, or with no "
                       "engine meeting measure 2)")
        for engine in ("clamav", "yara", "attachments"):
            if getattr(self, engine).enabled is False and getattr(d, engine).enabled is not False:
                out.append(f"antivirus.{engine}.enabled = false")
        if self.clamav.undated_signatures == "newest_file":
            out.append("antivirus.clamav.undated_signatures = \"newest_file\" (signature age from file times)")
        a, da = self.attachments, d.attachments
        order = {"accept": 0, "quarantine": 1, "reject": 2}
        for key in ("on_blocked", "on_macro", "on_pdf_javascript", "on_encrypted", "on_archive_limit",
                    "on_unscannable"):
            if order[getattr(a, key)] < order[getattr(da, key)]:
                out.append(f"antivirus.attachments.{key} = \"{getattr(a, key)}\"")
        if a.allowed_types:
            out.append(f"antivirus.attachments.allowed_types = {a.allowed_types}")
        return out
