"""Encryption as a Feature of the gateway's pipeline: the inbound check for encrypted mail (ENCRYPTED_SMIME /
ENCRYPTED_PGP, `encryption.inbound_encrypted`). Wiring only; no key material is loaded here.

The internal role's parts (key store, at-rest sealer, certificate collection) are wired in apps/mda.py;
the outbound policy (crypto/outbound.py) is for the submission path, which is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from mailbastion.apps.features import BaseFeature, Services
from mailbastion.crypto.inbound import EncryptedMailCheck
from mailbastion.policy.check import Check

__all__ = ["EncryptionFeature", "build"]


@dataclass(eq=False)
class EncryptionFeature(BaseFeature):
    services: Services
    name: str = "encryption"
    _checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        action = self.services.settings.encryption.inbound_encrypted
        self._checks = cast(list[Check], [EncryptedMailCheck(action=action)])

    def checks(self) -> list[Check]:
        return list(self._checks)


def build(services: Services) -> EncryptionFeature:
    return EncryptionFeature(services)
