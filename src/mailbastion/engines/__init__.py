"""Adapters to anti-virus engines, one per product, one shape (`Scanner`). Code that runs scanners
depends on `engines.base`, never on a product module; `apps/` builds the concrete ones."""

from mailbastion.engines.base import EngineInfo, Finding, FindingKind, Part, Scanner, ScanResult, ScanSubject
from mailbastion.engines.cache import ScanCache

__all__ = ["EngineInfo", "Finding", "FindingKind", "Part", "ScanCache", "ScanResult", "ScanSubject", "Scanner"]
