from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_kit import chromium_available, start_chromium


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium for the whole test session (a fresh profile)."""
    if not chromium_available():
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them)")
    driver = start_chromium(Path(tmp_path_factory.mktemp("chromium-profile")))
    yield driver
    driver.quit()
