"""Delivery agents: LMTP to the MDA, SMTP to remote MX, a router between them, and RFC 3464 DSNs."""

from __future__ import annotations

from mailbastion.delivery.agent import Delivered, DeliveryAgent, DeliveryOutcome, PermFailed, TempFailed
from mailbastion.delivery.dsn import Dsn, build_dsn
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.delivery.router import RoutingAgent
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent

__all__ = [
    "Delivered", "DeliveryAgent", "DeliveryOutcome", "Dsn", "LmtpDeliveryAgent", "PermFailed", "RoutingAgent",
    "SmtpDeliveryAgent", "TempFailed", "build_dsn",
]
