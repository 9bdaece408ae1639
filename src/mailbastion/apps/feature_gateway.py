"""The gateway edge checks as a Feature: relay control, recipients, HELO and header sanity.

    feature = build(services)       # services.recipients is the read-only RecipientResolver
    feature.checks()                # [RelayCheck, RecipientCheck, HeloCheck, headers]

Wiring only. Without a recipient map the gateway cannot tell our domains from others, so it refuses
to start (`startup_problems`) rather than run with relay control blind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from mailbastion.apps.features import BaseFeature, Services
from mailbastion.config.schema import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.outbound.srs import Srs, srs_from_settings
from mailbastion.policy.check import Check
from mailbastion.policy.checks.headers import headers
from mailbastion.policy.checks.helo import HeloCheck
from mailbastion.policy.checks.recipient import RecipientCheck
from mailbastion.policy.checks.relay import RelayCheck

__all__ = ["GatewayFeature", "build"]


@dataclass(eq=False)
class GatewayFeature(BaseFeature):
    services: Services
    name: str = "gateway"
    _checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        recipients = self.services.recipients
        hostname = self.services.settings.server.hostname
        if recipients is None:
            self._checks = cast(list[Check], [HeloCheck(hostname), headers])
            return
        srs = _srs(self.services.settings)  # bounces to SRS addresses of ours (delivery/forwarding.py)
        # cast: BaseCheck's ClassVars satisfy the Check protocol at run time (policy/check.py).
        self._checks = cast(list[Check], [RelayCheck(recipients),
                                          RecipientCheck(recipients, srs.check if srs is not None else None),
                                          HeloCheck(hostname, recipients), headers])

    def checks(self) -> list[Check]:
        return list(self._checks)

    def startup_problems(self) -> list[str]:
        if self.services.recipients is None:
            return ["gateway: no recipient map (directory.recipient_map): relay control cannot tell our domains"]
        return []


def _srs(settings: Settings) -> Srs | None:
    try:
        return srs_from_settings(settings)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the SRS key cannot be used: {exc}", key="srs.key_file") from None


def build(services: Services) -> GatewayFeature:
    return GatewayFeature(services)
