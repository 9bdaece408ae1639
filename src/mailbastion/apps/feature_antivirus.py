"""Wiring of the anti-virus feature: engines from configuration, the DATA check, measure 2 at start-up,
the freshness watch (which also turns ClamAV on and off when `enabled = "auto"`) and YARA rule reloads.
Wiring only: the logic lives in engines/ and policy/checks/.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from mailbastion.apps.features import Services
from mailbastion.config.sections.antivirus import AntivirusSection
from mailbastion.core.errors import ConfigError
from mailbastion.engines.base import Scanner
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.freshness import FreshnessWatch
from mailbastion.engines.measure2 import configuration_problems
from mailbastion.policy.check import Check
from mailbastion.policy.checks.antivirus import AntivirusCheck, AvPolicy

log = logging.getLogger("mailbastion.antivirus")

__all__ = ["AntivirusFeature", "auto_engines", "build", "build_scanners", "build_watch", "max_ages",
           "startup_refusals", "vendor_problems"]


def build_scanners(av: AntivirusSection, services: Services | None = None,
                   cache: ScanCache | None = None) -> list[Scanner]:
    """The configured engines, in a stable order. Raises ConfigError for broken YARA rules."""
    settings = services.settings if services else None
    scanners: list[Scanner] = []
    if av.clamav.enabled is not False:  # true or "auto"
        from mailbastion.engines.clamav import ClamdScanner

        c = av.clamav
        scanners.append(ClamdScanner(
            socket_path=c.socket, address=c.address, connect_timeout=c.connect_timeout, scan_timeout=c.scan_timeout,
            pool_size=c.pool_size, chunk_size=c.chunk_size, stream_max_length=c.stream_max_length, cache=cache,
            scan_whole_message=c.scan_whole_message, undated_signatures=c.undated_signatures,
            database_dir=c.database_dir,
        ))
    if av.yara.enabled:
        from mailbastion.engines.yara import YaraScanner

        dirs = [settings.path(d) if settings else d for d in av.yara.rule_dirs]
        scanners.append(YaraScanner(dirs, include_shipped=av.yara.include_shipped,
                                    reload_interval=av.yara.reload_interval, cache=cache))
    if av.attachments.enabled:
        from mailbastion.engines.attachments import AttachmentPolicy

        blocked = set(av.attachments.blocked_types) - set(av.attachments.allowed_types)
        scanners.append(AttachmentPolicy(blocked_types=blocked))
    if av.icap.url:
        from mailbastion.engines.icap import IcapScanner

        scanners.append(IcapScanner(av.icap.url, vendor=(av.icap.vendor or "icap").lower(), timeout=av.icap.timeout,
                                    cache=cache))
    return scanners


def auto_engines(av: AntivirusSection) -> frozenset[str]:
    """Engines used only while they answer."""
    return frozenset({"clamav"}) if av.clamav.enabled == "auto" else frozenset()


def vendor_problems(av: AntivirusSection, scanners: list[Scanner]) -> list[str]:
    """Measure 2 by configuration (engines/measure2.py): some engine with vendor-maintained signatures must come
    from another vendor than the workstations'. YARA and the attachment policy do not count."""
    if not av.enabled:
        return ["antivirus is disabled: every message must be scanned (set [antivirus] enabled = true)"]
    return configuration_problems(av.workstation_engine, scanners)


def startup_refusals(av: AntivirusSection, scanners: list[Scanner]) -> list[str]:
    """Why the gateway refuses to start: measure 2 cannot be met by this configuration (no engine with vendor
    signatures unlike the workstations'), unless the site accepts mail without one (`stale_policy =
    "alarm_only"`, logged as weakened); then the same text is logged as an error at start and `av status`
    still says "not met" and exits 1."""
    problems = vendor_problems(av, scanners)
    if problems and av.enabled and av.workstation_engine and av.stale_policy == "alarm_only":
        return []
    return problems


def max_ages(av: AntivirusSection) -> dict[str, timedelta | None]:
    def hours(h: float | None) -> timedelta | None:
        return timedelta(hours=h) if h else None

    return {"clamav": hours(av.clamav.max_signature_age_hours), "yara": hours(av.yara.max_signature_age_hours),
            "attachments": None, "icap": None}


def build_watch(av: AntivirusSection, scanners: list[Scanner]) -> FreshnessWatch:
    """The watch of engine availability, signature age and measure 2, as the gateway and `av status` use it."""
    return FreshnessWatch(scanners, max_ages(av), interval=av.freshness_interval, auto=auto_engines(av),
                          workstation=av.workstation_engine, measure2_enforced=True, stale_policy=av.stale_policy)


@dataclass(eq=False)
class AntivirusFeature:
    services: Services
    scanners: list[Scanner] = field(default_factory=list)
    check: AntivirusCheck | None = None
    freshness: FreshnessWatch | None = None
    name: str = "antivirus"
    problems: list[str] = field(default_factory=list)

    def checks(self) -> list[Check]:
        # Called whenever the pipeline is built: at start and on SIGHUP. A reload looks at the engines again,
        # so ClamAV comes on (or its absence is logged) without waiting for the next scheduled check.
        if self.freshness is not None and self.freshness.is_running:
            self.freshness.recheck_soon()
        return [cast(Check, self.check)] if self.check is not None else []

    def startup_problems(self) -> list[str]:
        av = self.services.settings.antivirus
        for p in vendor_problems(av, self.scanners):
            if p not in startup_refusals(av, self.scanners):
                log.error("av.measure2_not_met %s (starting anyway: antivirus.stale_policy = \"alarm_only\")", p)
        return list(self.problems) + startup_refusals(av, self.scanners)

    async def start(self) -> None:
        if self.freshness is not None:
            await self.freshness.start()  # logs engines that are off, stale signatures and measure 2
            for status in self.freshness.status.values():
                if status.error and not status.auto:
                    log.error("antivirus engine %s unreachable at start: %s (mail will get 451 until it answers)",
                              status.name, status.error)
        for s in self.scanners:
            start = getattr(s, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        if self.freshness is not None:
            await self.freshness.stop()
        for s in self.scanners:
            for meth in ("stop", "close"):
                fn = getattr(s, meth, None)
                if fn is not None:
                    result = fn()
                    if asyncio.iscoroutine(result):
                        await result


def build(services: Services) -> AntivirusFeature:
    settings = services.settings
    av = settings.antivirus
    if services.quarantine is None:
        from mailbastion.quarantine.store import QuarantineStore

        services.quarantine = QuarantineStore.from_settings(settings)
    feature = AntivirusFeature(services)
    if not av.enabled:
        return feature
    cache = ScanCache(av.cache_size, av.cache_ttl) if av.cache_size else None
    try:
        feature.scanners = build_scanners(av, services, cache)
    except ConfigError as exc:
        feature.problems.append(str(exc))
        return feature
    feature.freshness = build_watch(av, feature.scanners)
    a = av.attachments
    policy = AvPolicy(
        on_blocked=a.on_blocked, on_macro=a.on_macro, on_pdf_javascript=a.on_pdf_javascript,
        on_encrypted=a.on_encrypted, on_archive_limit=a.on_archive_limit, on_unscannable=a.on_unscannable,
        on_malformed=a.on_malformed, stale_policy=av.stale_policy,
    )
    feature.check = AntivirusCheck(
        feature.scanners, required=av.required_engines(), policy=policy, limits=av.archives,
        max_parts=a.max_parts, engine_timeout=av.engine_timeout, freshness=feature.freshness, cache=cache,
        max_concurrent=av.max_concurrent_scans,
    )
    services.extras["antivirus"] = feature
    return feature
