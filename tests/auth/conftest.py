"""Fixtures for sender-authentication tests: a real DNS server on loopback and a resolver pointed at it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from authkit import dns_server, resolver, rig  # noqa: F401
