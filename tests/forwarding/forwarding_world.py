"""(A uniquely named module, not conftest, so test modules can import it.) The addresses of the forwarding
deployment that tests/forwarding/conftest.py builds."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))  # submission_world: the kit reused

from submission_world import DOMAIN

ERIN = f"erin@{DOMAIN}"  # sends mail that bounces (the hijack test); nobody else uses her
LEAVER = f"leaver@{DOMAIN}"
SUCCESSOR = "carol@remote.test"

__all__ = ["ERIN", "LEAVER", "SUCCESSOR"]
