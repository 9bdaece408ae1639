"""Encryption tests: a test S/MIME CA and identities for the session; the MDA test kit of tests/mailbox."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mailbox"))  # mda_testkit (LMTP client, settings)

from crypto_testkit import Identity, SmimeTestCa


@pytest.fixture(scope="session")
def smime_ca(tmp_path_factory: pytest.TempPathFactory) -> SmimeTestCa:
    return SmimeTestCa.create(tmp_path_factory.mktemp("smime-ca"))


@pytest.fixture(scope="session")
def bob(smime_ca: SmimeTestCa, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    """An outsider with an RSA S/MIME certificate from the test CA."""
    return smime_ca.issue(tmp_path_factory.mktemp("bob"), "bob@partner.example")


@pytest.fixture(scope="session")
def carol_ec(smime_ca: SmimeTestCa, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    """An outsider with an EC (P-256) S/MIME certificate: ECDH key agreement."""
    return smime_ca.issue(tmp_path_factory.mktemp("carol"), "carol@partner.example", ec_key=True)
