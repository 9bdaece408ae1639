"""Everything the portal's pages stand on, built once from the settings (or handed in by a test).

    ctx = PortalContext.from_settings(settings)          # directory, quarantine + index, spool, audit, keys
    app = build_app(ctx)                                  # portal/app.py

The portal runs inside, next to the directory (it holds password hashes and sessions), and reaches the
quarantine and the spool through the file system: in the all-in-one deployment they are local; a split
deployment must give the internal host the quarantine folder (see docs/architecture.md, change 28).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mailbastion.config import Settings
from mailbastion.portal.extensions import (
    AppPasswords,
    ClientSetup,
    DirectoryAppPasswords,
    LandingRoutes,
    PortalExtension,
)
from mailbastion.portal.keys import PortalKeys
from mailbastion.portal.throttle import ClientThrottle

if TYPE_CHECKING:
    from mailbastion.audit.log import AuditLog
    from mailbastion.aup.store import AupStore
    from mailbastion.directory.portal import PortalStore
    from mailbastion.directory.store import Directory
    from mailbastion.measures.board import MeasureBoard
    from mailbastion.quarantine.index import QuarantineIndex
    from mailbastion.quarantine.release import QuarantineRelease
    from mailbastion.quarantine.store import QuarantineStore
    from mailbastion.spool.control import QueueControl
    from mailbastion.spool.writer import Spool

__all__ = ["PortalContext", "make_enrol_link", "public_url"]


def public_url(settings: Settings) -> str:
    """Where people reach the portal: `portal.public_url`, else https://<server.hostname>:<listen port>."""
    return settings.portal.base_url(settings.server.hostname)


def make_enrol_link(settings: Settings, store: PortalStore, address: str, *, by: str, reason: str = "") -> str:
    """A one-time enrolment link for `address`, valid `portal.enrol_link_hours`; earlier unused links of the
    account stop working. Only the token's hash is stored; the URL is returned to be handed over once."""
    from mailbastion.portal.keys import new_token, token_hash

    token = new_token()
    expires = store.now() + dt.timedelta(hours=settings.portal.enrol_link_hours)
    store.create_enrol_token(address, token_hash(token), expires_at=expires, by=by, reason=reason)
    return f"{public_url(settings)}/enrol/{token}"


@dataclass
class PortalContext:
    settings: Settings
    directory: Directory
    store: PortalStore
    keys: PortalKeys
    quarantine: QuarantineStore
    qindex: QuarantineIndex
    measures: MeasureBoard
    landing: LandingRoutes = field(default_factory=LandingRoutes)
    client_setup: ClientSetup | None = None
    app_passwords: AppPasswords | None = None
    extensions: Sequence[PortalExtension] = ()
    throttle: ClientThrottle = field(default_factory=ClientThrottle)
    # What TOTP codes are checked against (unix seconds): the real time, which the user's phone also reads
    # (not the directory's clock, which `[lifecycle] testing_clock_offset_file` may move). Tests hand in
    # their own to reach the next 30 s step without waiting for it.
    totp_clock: Callable[[], float] = time.time

    @staticmethod
    def from_settings(settings: Settings, **overrides: Any) -> PortalContext:
        """Open what the portal needs. `overrides` replace parts (tests: `directory=`, `measures=` ...)."""
        from mailbastion.directory.portal import PortalStore
        from mailbastion.directory.store import Directory
        from mailbastion.measures.inventory import portal_board
        from mailbastion.quarantine.index import QuarantineIndex
        from mailbastion.quarantine.store import QuarantineStore

        directory = overrides.pop("directory", None) or Directory.from_settings(settings)
        quarantine = overrides.pop("quarantine", None) or QuarantineStore.from_settings(settings)
        p = settings.portal
        parts: dict[str, Any] = {
            "settings": settings, "directory": directory, "store": PortalStore(directory),
            "keys": PortalKeys.load_or_create(settings.path("portal/keys")), "quarantine": quarantine,
            "qindex": QuarantineIndex(quarantine, recipient_delimiter=settings.mailbox.recipient_delimiter),
            "throttle": ClientThrottle(p.client_max_failures, dt.timedelta(minutes=p.login_window_minutes)),
        }
        parts["app_passwords"] = DirectoryAppPasswords(directory)  # every client's device password, IMAP or submission
        from mailbastion.portal.aup_pages import AupPages

        pages: list[PortalExtension] = [AupPages()]  # the acceptable use policy's pages (measure 7)
        if settings.training.enabled:  # measure 8: My training, Training, and the simulations' landing pages
            from mailbastion.portal.training_pages import TrainingLanding, TrainingPages

            pages.append(TrainingPages())
            parts["landing"] = TrainingLanding(directory, settings)
        pages += overrides.pop("more_extensions", ())  # pages of parts wired by the role (the phish desk)
        parts["extensions"] = tuple(pages)
        parts.update(overrides)
        if "measures" not in parts:
            parts["measures"] = portal_board(settings, parts["store"], parts.get("av_status"))
        parts.pop("av_status", None)
        return PortalContext(**parts)

    @property
    def public_url(self) -> str:
        return public_url(self.settings)

    @property
    def audit(self) -> AuditLog:
        return self.directory.audit

    @cached_property
    def spool(self) -> Spool:
        from mailbastion.spool.writer import Spool

        return Spool.for_system_mail(self.settings)  # digests and releases reach a queue manager in every role

    @cached_property
    def aup(self) -> AupStore:
        from mailbastion.aup.store import AupStore

        return AupStore(self.directory)

    @cached_property
    def queue(self) -> QueueControl:
        from mailbastion.spool.control import QueueControl

        return QueueControl(self.settings.path(self.settings.spool.dir))

    @cached_property
    def release(self) -> QuarantineRelease:
        from mailbastion.quarantine.release import QuarantineRelease

        # The directory is the resolver: a release to someone who cannot receive is refused, never bounced.
        return QuarantineRelease(self.quarantine, self.spool, self.audit, self.directory)

    def now(self) -> dt.datetime:
        return self.directory.now()
