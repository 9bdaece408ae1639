"""Real MDA on loopback: a directory on SQLite, Maildirs in tmp_path, and a private CA for mutual TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mda_testkit import Mda, lmtp_settings

from mailbastion.apps.mda import build_mda
from mailbastion.directory import Directory
from mailbastion.pki import make_deployment_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment_pki(tmp_path_factory.mktemp("pki") / "tls", "localhost")


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment_pki(tmp_path_factory.mktemp("other-pki") / "tls", "localhost")


@pytest.fixture
async def mda(tmp_path: Path, pki: dict[str, Path]) -> AsyncIterator[Mda]:
    settings = lmtp_settings(tmp_path, pki)
    directory = Directory.from_settings(settings)
    directory.add_domain("example.org", by="test")
    directory.add_account("alice@example.org", None, "test")
    directory.add_account("bob@example.org", None, "test")
    server = build_mda(settings, directory=directory)
    await server.start()
    try:
        yield Mda(server, directory, tmp_path / "mail", pki, server.port)
    finally:
        await server.stop()
