"""Features plug their checks, engines and start-up rules into the roles through one seam.

Each feature lives in `apps/feature_<name>.py` and exposes `build(services) -> Feature`. The roles
(gateway, all-in-one, `mailbastion scan`) ask every feature for its checks; a feature whose module is
not there is simply absent.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from mailbastion.config import Settings
from mailbastion.core.ports import QuarantineSink, RecipientResolver
from mailbastion.dns import DnsResolver
from mailbastion.policy.check import Check
from mailbastion.policy.pipeline import Pipeline

log = logging.getLogger("mailbastion.apps")

FEATURE_NAMES = ("gateway", "auth", "antivirus", "spam", "encryption")

# The checks that judge a message our users send (the relay listener's outbound pipeline): malware with the
# same engines, and the spam filter's content checks. Not the inbound ones about other people's servers and
# senders (relay, recipients, HELO, SPF, DKIM, ARC, DMARC, DNS blocklists, greylisting, rate limits per
# client, look-alikes of our domains, the [EXTERNAL] tag, learning from reports).
OUTBOUND_CHECKS = ("antivirus", "gtube", "spam_rules", "spam_classifier")


@dataclass(eq=False)
class Services:
    """Shared collaborators built once per process and handed to every feature."""

    settings: Settings
    resolver: DnsResolver
    recipients: RecipientResolver | None = None
    quarantine: QuarantineSink | None = None
    extras: dict[str, object] = field(default_factory=dict)  # feature-owned singletons, keyed by feature name


class Feature(Protocol):
    name: str

    def checks(self) -> list[Check]:
        """The checks this feature adds to the pipeline (may be empty when disabled)."""
        ...

    def startup_problems(self) -> list[str]:
        """Reasons the gateway must refuse to start (e.g. no mail AV engine differs from the workstations')."""
        ...

    async def start(self) -> None:
        """Start background work (engine pools, rule reloads, freshness watch)."""
        ...

    async def stop(self) -> None: ...


class BaseFeature:
    """The Feature protocol's defaults: no start-up problems, nothing to start or stop. A feature
    overrides what it has."""

    name: str

    def startup_problems(self) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def make_resolver(settings: Settings) -> DnsResolver:
    d = settings.dns
    return DnsResolver(d.nameservers or None, port=d.port, timeout=d.timeout, cache_size=d.cache_size)


def gateway_services(settings: Settings) -> Services:
    """What the gateway's pipeline stands on: the DNS resolver and the address-only recipient map (the
    gateway opens no directory). A missing map fails closed: no domain is ours."""
    from mailbastion.directory.recipient_map import RecipientMap

    return Services(settings, make_resolver(settings),
                    recipients=RecipientMap(settings.path(settings.directory.recipient_map)))


def load_features(services: Services, names: tuple[str, ...] = FEATURE_NAMES) -> list[Feature]:
    out: list[Feature] = []
    for name in names:
        try:
            module = importlib.import_module(f"mailbastion.apps.feature_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mailbastion.apps.feature_{name}":
                continue
            raise
        out.append(module.build(services))
    return out


def build_outbound_pipeline(settings: Settings, features: list[Feature]) -> Pipeline:
    """The relay listener's pipeline: OUTBOUND_CHECKS taken from `features` (the same feature objects as the
    inbound pipeline's, so the engines, pools and models are shared), weighed by the same score table.
    Raises ConfigError as the inbound pipeline does (a bad local.d/scores.toml)."""
    from mailbastion.policy.scoring import Scorer, load_score_table

    table = load_score_table(settings.path("local.d/scores.toml"))
    checks = [c for f in features for c in f.checks() if c.name in OUTBOUND_CHECKS]
    return Pipeline(checks, Scorer(table))
