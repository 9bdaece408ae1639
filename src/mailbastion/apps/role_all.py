"""The all-in-one process (the embedded default for one machine): the internal role, then the gateway.

The MDA starts first; on stop the gateway stops taking mail before the MDA stops. With `[lmtp] direct`
(the default) the gateway's queue manager hands local mail to the MDA in this process
(`mailbox/direct.py`); otherwise it delivers over the LMTP link and waits for the MDA to answer there.
With `server.workers` > 1 the SMTP acceptors get processes of their own and the parent keeps the single
queue manager; the MDA gets one too only without direct delivery.
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

    direct = settings.lmtp.direct  # the queue manager hands local mail to the MDA here, not over LMTP
    internal = InternalRole(settings, own_process=settings.server.workers > 1 and not direct)
    gateway = GatewayRole(settings, wait_for_mda=not direct, local_agent=internal.direct_agent if direct else None)
    submission = submission_roles(settings)
    for role in submission:  # bounces from the Internet matched by the gateway: hijack signs (issue 10)
        gateway.bounce_listeners.append(role.on_bounce)
    return [internal, *imap_roles(settings), gateway, *submission]


__all__ = ["roles"]
