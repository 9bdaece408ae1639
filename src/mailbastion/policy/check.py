"""The Check protocol, the context a check sees, and the registry of every known check.

A check reports what it saw. It does not reply, score or log a verdict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Symbol

T = TypeVar("T")


@dataclass(eq=False)
class CheckContext:
    """What a check may look at. Checks read it; only the pipeline writes it.

    `facts` is a typed blackboard: a check that computes something later checks need (the SPF result
    for DMARC, the auth results for the classifier) stores it under its own type with `put`, and a
    reader asks for it by type with `get`. No untyped shared dictionaries of strings.
    """

    stage: Stage
    peer: PeerInfo
    envelope: Envelope
    rcpt: Address | None = None  # the recipient being judged, at RCPT
    message: SpooledMessage | None = None  # at DATA
    symbols: list[Symbol] = field(default_factory=list)  # everything seen so far in this transaction
    facts: dict[type, Any] = field(default_factory=dict)

    def put(self, value: object) -> None:
        self.facts[type(value)] = value

    def get(self, kind: type[T]) -> T | None:
        value = self.facts.get(kind)
        return value if isinstance(value, kind) else None

    def has_symbol(self, name: str) -> bool:
        return any(s.name == name for s in self.symbols)


@runtime_checkable
class Check(Protocol):
    name: str
    stage: Stage
    emits: frozenset[str]  # every name must be scored in scores.toml (checked at startup)
    on_error: Action  # SOFT_REJECT = fail closed (AV); ACCEPT = fail open (DNSBL)
    timeout: float  # seconds; a timeout counts as an error
    priority: int  # lower runs first; equal priorities run concurrently

    async def __call__(self, ctx: CheckContext) -> CheckResult: ...


_KNOWN: dict[str, frozenset[str]] = {}


def register_emits(name: str, emits: frozenset[str] | set[str]) -> None:
    """Record that a check called `name` exists and which symbols it can emit.

    Every check module registers at import; `policy.checks` imports them all, and `apps.pipeline` those of
    other packages (crypto/inbound.py), so that the score table can be validated against every check that
    exists, enabled or not.
    """
    _KNOWN[name] = frozenset(emits) | {error_symbol(name)}


def known_checks() -> dict[str, frozenset[str]]:
    return dict(_KNOWN)


def error_symbol(check_name: str) -> str:
    """The symbol a check's timeout or exception becomes: relay → RELAY_CHECK_ERROR."""
    return f"{check_name.upper()}_CHECK_ERROR"


class BaseCheck:
    """Convenience base for class-based checks that need collaborators (a resolver, scanners)."""

    # Class attributes that instances read (the Check protocol's attributes); set them on the subclass.
    name: str
    stage: Stage
    emits: frozenset[str]
    on_error: Action = Action.ACCEPT
    timeout: float = 10.0
    priority: int = 50

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            register_emits(cls.name, cls.emits)

    async def __call__(self, ctx: CheckContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError


CheckFn = Callable[[CheckContext], Awaitable[CheckResult]]


@dataclass(frozen=True, eq=False)
class FunctionCheck:
    fn: CheckFn
    name: str
    stage: Stage
    emits: frozenset[str]
    on_error: Action = Action.ACCEPT
    timeout: float = 5.0
    priority: int = 50

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        return await self.fn(ctx)


def check(
    stage: Stage,
    *,
    emits: set[str] | frozenset[str],
    name: str | None = None,
    on_error: Action = Action.ACCEPT,
    timeout: float = 5.0,
    priority: int = 50,
) -> Callable[[CheckFn], FunctionCheck]:
    """Turn `async def spf(ctx) -> CheckResult` into a registered Check."""

    def wrap(fn: CheckFn) -> FunctionCheck:
        check_name = name or fn.__name__
        register_emits(check_name, frozenset(emits))
        return FunctionCheck(fn, check_name, stage, frozenset(emits), on_error, timeout, priority)

    return wrap
