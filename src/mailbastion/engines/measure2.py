"""Measure 2, decided in one place: mail is scanned by an engine unlike the workstations'.

Only engines whose vendor maintains their signatures count (`Scanner.vendor_signatures`: ClamAV with its
signature database, an ICAP product). Our YARA rules and the attachment policy are defence in depth: they
never meet measure 2, alone or together. The rule has two readings, both here so that `av status`, the
gateway's start-up and the DATA check agree:

    configuration_problems(workstation, scanners)  # start-up: is such an engine configured at all?
    assess(workstation, scanners, statuses)         # now: is one reachable, with signatures of known, fresh age?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from mailbastion.engines.base import EngineStatus, Scanner

__all__ = ["OUR_RULES_DO_NOT_COUNT", "Measure2", "assess", "configuration_problems"]

OUR_RULES_DO_NOT_COUNT = "our YARA rules and the attachment policy do not count: they carry no vendor signatures"


@dataclass(frozen=True, slots=True)
class Measure2:
    met: bool
    by: tuple[str, ...] = ()  # the engines that meet it now ("clamav")
    reasons: tuple[str, ...] = ()  # why each vendor engine does not count (or why none is configured)

    def describe(self) -> str:
        if self.met:
            return "met by " + ", ".join(self.by)
        return "not met: " + "; ".join(self.reasons or ("no engine with vendor-maintained signatures",))


def _workstation_problem(workstation: str | None) -> str | None:
    if not workstation:
        return ("antivirus.workstation_engine is not set: declare the workstations' anti-virus vendor "
                "(e.g. \"microsoft\") so the gateway can prove its engines differ")
    return None


def configuration_problems(workstation: str | None, scanners: Sequence[Scanner]) -> list[str]:
    """Why measure 2 cannot be met by this configuration, whatever the engines answer ([] when it can)."""
    problem = _workstation_problem(workstation)
    if problem:
        return [problem]
    vendor_engines = [s for s in scanners if s.vendor_signatures]
    if any(s.vendor.lower() != (workstation or "").lower() for s in vendor_engines):
        return []
    have = ", ".join(f"{s.name} ({s.vendor})" for s in vendor_engines) or "none"
    return [(f"measure 2 not met: no engine with vendor-maintained signatures differs from the workstations' "
             f"({workstation}): configured {have}; {OUR_RULES_DO_NOT_COUNT}. Use ClamAV "
             "(antivirus.clamav.enabled = \"auto\" or true, with clamd and freshclam) or an ICAP engine "
             "from another vendor")]


def assess(workstation: str | None, scanners: Sequence[Scanner], statuses: Mapping[str, EngineStatus]) -> Measure2:
    """Measure 2 as the engines answer now: met when some vendor-signature engine of another vendor than
    the workstations' is reachable and its signatures are of known age within their limit."""
    problems = configuration_problems(workstation, scanners)
    if problems:
        return Measure2(False, (), tuple(problems))
    by: list[str] = []
    reasons: list[str] = []
    for s in scanners:
        if not s.vendor_signatures:
            continue
        if s.vendor.lower() == (workstation or "").lower():
            reasons.append(f"{s.name}: same vendor as the workstations' ({s.vendor})")
            continue
        status = statuses.get(s.name)
        if status is None:
            reasons.append(f"{s.name}: not checked yet")
        elif status.info is None or status.is_stale:
            reasons.append(status.describe())
        else:
            by.append(s.name)
    return Measure2(bool(by), tuple(by), () if by else tuple(reasons))
