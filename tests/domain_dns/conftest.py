"""Fixtures for the domain DNS tests: the sender-authentication kit's real DNS server on loopback and a
resolver pointed at it (tests/auth/authkit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "auth"))

from authkit import dns_server, resolver  # noqa: E402, F401
