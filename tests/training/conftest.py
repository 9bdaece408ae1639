from __future__ import annotations

import sys
from pathlib import Path

# The portal's test kit (PortalRunner, the HTTPS client, Chromium): tests/portal/portal_kit.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "portal"))
