"""The public surface of the anti-virus packages is explicit (httpx-style)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", [
    "mailbastion.engines", "mailbastion.engines.base", "mailbastion.engines.clamav", "mailbastion.engines.yara",
    "mailbastion.engines.attachments", "mailbastion.engines.icap", "mailbastion.engines.cache",
    "mailbastion.engines.archives", "mailbastion.engines.mime_walk", "mailbastion.core.filetype",
    "mailbastion.engines.freshness", "mailbastion.engines.measure2", "mailbastion.core.mime_parts",
    "mailbastion.core.message", "mailbastion.quarantine", "mailbastion.policy.checks.antivirus",
])
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__, module
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_engines_package_surface() -> None:
    from mailbastion import engines

    assert set(engines.__all__) == {"EngineInfo", "Finding", "FindingKind", "Part", "ScanCache", "ScanResult",
                                    "ScanSubject", "Scanner"}


def test_checks_depend_on_the_scanner_protocol_not_products() -> None:
    from pathlib import Path

    import mailbastion.policy.checks.antivirus as check

    source = Path(check.__file__).read_text()
    assert "engines.clamav" not in source and "engines.yara" not in source and "engines.icap" not in source
