"""The spam and phishing filter. Owned by the spam-filter issue."""

from __future__ import annotations

from mailbastion.config.sections.base import Section


class SpamSection(Section):
    enabled: bool = True
