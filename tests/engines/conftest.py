from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbastion.testing.clamd import ClamdTestServer, clamd_missing_reason


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdTestServer]:
    reason = clamd_missing_reason()
    if reason:
        pytest.skip(reason)
    server = ClamdTestServer()
    server.start()
    yield server
    server.close()
