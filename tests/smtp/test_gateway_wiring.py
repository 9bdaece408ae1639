"""Wiring: the gateway Feature through apps/pipeline.py, and the handler against its protocol."""

from __future__ import annotations

import pytest
from gateway_testkit import make_pipeline, recipients

from mailbastion.apps.feature_gateway import build
from mailbastion.apps.features import Services, make_resolver
from mailbastion.apps.pipeline import build_pipeline
from mailbastion.config.loader import parse_settings
from mailbastion.core.errors import ConfigError
from mailbastion.gateway import GatewayHandler
from mailbastion.smtp.handler import StageHandler
from mailbastion.testing.fakes import FakeSpool


def test_feature_builds_a_valid_pipeline(tmp_path: object) -> None:
    settings = parse_settings({"server": {"hostname": "mx.example.net", "data_dir": str(tmp_path)}})
    services = Services(settings, make_resolver(settings), recipients=recipients())
    feature = build(services)
    assert [c.name for c in feature.checks()] == ["relay", "recipient", "helo", "headers"]
    assert feature.startup_problems() == []
    pipeline, _ = build_pipeline(services, [feature])  # validates scores both ways
    assert {c.name for c in pipeline.checks} == {"relay", "recipient", "helo", "headers"}


def test_feature_without_recipient_map_refuses_to_start() -> None:
    settings = parse_settings({})
    feature = build(Services(settings, make_resolver(settings)))
    assert feature.startup_problems()
    assert "relay" not in [c.name for c in feature.checks()]


def test_handler_satisfies_the_protocol() -> None:
    handler = GatewayHandler(parse_settings({}), make_pipeline(), recipients(), FakeSpool())
    assert isinstance(handler, StageHandler)


def test_unscored_symbol_is_refused_at_startup() -> None:
    from mailbastion.core.stages import Stage
    from mailbastion.policy.check import FunctionCheck

    async def noop(ctx: object) -> object:
        return None

    with pytest.raises(ConfigError):
        make_pipeline(extra=[FunctionCheck(noop, "x", Stage.DATA, frozenset({"NOT_SCORED_ANYWHERE"}))])  # type: ignore[arg-type]
