"""Anti-virus engines, attachment policy, freshness. Owned by the anti-virus issue."""

from __future__ import annotations

from mailbastion.config.sections.base import Section


class AntivirusSection(Section):
    enabled: bool = True
