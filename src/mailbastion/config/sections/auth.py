"""Sender authentication (SPF, DKIM, DMARC, ARC) and DKIM signing. Owned by the sender-authentication issue."""

from __future__ import annotations

from mailbastion.config.sections.base import Section


class AuthSection(Section):
    enabled: bool = True
