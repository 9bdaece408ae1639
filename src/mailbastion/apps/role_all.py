"""The all-in-one process (the embedded default for one machine): the internal role, then the gateway.

The MDA starts first and the gateway's queue manager waits for it; on stop the gateway stops taking
mail before the MDA stops. With `server.workers` > 1 the SMTP acceptors and the MDA each get processes
of their own, and the parent keeps the single queue manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbastion.apps.role_gateway import GatewayRole
from mailbastion.apps.role_internal import InternalRole, imap_roles
from mailbastion.config import Settings

if TYPE_CHECKING:
    from mailbastion.apps.process import Role


def roles(settings: Settings) -> list[Role]:
    from mailbastion.apps.role_submission import submission_roles  # after the gateway: its relay listener is up

    several = settings.server.workers > 1
    gateway = GatewayRole(settings, wait_for_mda=True)
    submission = submission_roles(settings)
    for role in submission:  # bounces from the Internet matched by the gateway: hijack signs (issue 10)
        gateway.bounce_listeners.append(role.on_bounce)
    return [InternalRole(settings, own_process=several), *imap_roles(settings), gateway, *submission]


__all__ = ["roles"]
