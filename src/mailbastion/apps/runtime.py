"""What `mailbastion scan` runs: the gateway's pipeline, built as the gateway builds it, delivering nothing.

The running server is `apps/process.py` (one `serve` process) with its roles: `role_gateway.py`,
`role_internal.py` and `role_all.py` (both in one process).
"""

from __future__ import annotations

from mailbastion.apps.features import Feature, gateway_services
from mailbastion.apps.pipeline import build_pipeline
from mailbastion.config import Settings
from mailbastion.policy.pipeline import Pipeline


async def build_services_for_scan(settings: Settings) -> tuple[Pipeline, list[Feature]]:
    """The gateway's pipeline, for `mailbastion scan`: same checks, nothing delivered."""
    return build_pipeline(gateway_services(settings))


__all__ = ["build_services_for_scan"]
