"""How an address resolves, written once for both the directory database and the gateway's JSON map.

Order: our domain? → an active account of that exact (case-folded) address → an alias of it → the same
two lookups without the `+tag` (plus-addressing). Aliases expand recursively to final targets: active local
accounts and remote addresses; inactive or unknown local targets are dropped, loops are cut. An alias left
with no target resolves as UNKNOWN_USER, so mail for a leaver's alias is refused, not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.ports import Resolution, ResolutionKind

MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Lookups:
    """Three questions a store answers; keys are normalized addresses (`Address.normalized`)."""

    is_local_domain: Callable[[str], bool]
    is_active: Callable[[str], bool]
    alias_targets: Callable[[str], Sequence[str]]  # empty when not an alias
    successor_of: Callable[[str], str | None] = lambda key: None  # a leaver's successor (named in refusals)


def to_address(text: str | Address) -> Address:
    return text if isinstance(text, Address) else parse_address(text.strip(), allow_utf8=True)


def resolve(address: Address | str, lookups: Lookups, delimiter: str = "+") -> Resolution:
    """Resolve one address. Never raises for an unknown address; raises AddressError for one that does not
    parse."""
    addr = to_address(address)
    if not lookups.is_local_domain(addr.domain):
        return Resolution(ResolutionKind.UNKNOWN_DOMAIN, addr)
    candidates = [addr]
    if delimiter:
        untagged = addr.without_tag(delimiter)
        if untagged != addr:
            candidates.append(untagged)
    for cand in candidates:
        key = cand.normalized
        if lookups.is_active(key):
            return Resolution(ResolutionKind.LOCAL, to_address(key))
        if lookups.alias_targets(key):
            targets = expand(key, lookups, delimiter)
            if not targets:
                return Resolution(ResolutionKind.UNKNOWN_USER, addr)
            return Resolution(ResolutionKind.ALIAS, addr, tuple(to_address(t) for t in targets))
    for cand in candidates:
        successor = lookups.successor_of(cand.normalized)
        if successor:
            return Resolution(ResolutionKind.UNKNOWN_USER, addr, successor=successor)
    return Resolution(ResolutionKind.UNKNOWN_USER, addr)


def expand(alias: str, lookups: Lookups, delimiter: str = "+") -> tuple[str, ...]:
    """Final targets of `alias` in a stable order, without duplicates."""
    out: list[str] = []
    seen: set[str] = {alias}

    def walk(key: str, depth: int) -> None:
        for target in lookups.alias_targets(key):
            try:
                t = to_address(target)
            except AddressError:
                continue
            if not lookups.is_local_domain(t.domain):
                if str(t) not in out:
                    out.append(str(t))
                continue
            for cand in dict.fromkeys([t.normalized, t.without_tag(delimiter).normalized if delimiter else t.normalized]):
                if lookups.is_active(cand):
                    if cand not in out:
                        out.append(cand)
                    break
                if lookups.alias_targets(cand):
                    if cand not in seen and depth < MAX_ALIAS_DEPTH:
                        seen.add(cand)
                        walk(cand, depth + 1)
                    break

    walk(alias, 0)
    return tuple(out)


__all__ = ["MAX_ALIAS_DEPTH", "Lookups", "expand", "resolve", "to_address"]
