"""Delivery agents (LMTP to the MDA, SMTP to remote MX, a router between them) and RFC 3464 DSNs.

Every agent satisfies the `DeliveryAgent` port of core/ports.py and answers with the outcome values of
core/outcome.py; `build_dsn` is what apps/ hands the queue manager as its `bounce` callable.
"""

from __future__ import annotations

from mailbastion.delivery.dsn import Dsn, build_dsn
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.delivery.router import RoutingAgent
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent

__all__ = ["Dsn", "LmtpDeliveryAgent", "RoutingAgent", "SmtpDeliveryAgent", "build_dsn"]
