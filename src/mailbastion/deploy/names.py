"""Names and ports the gateway and the internal host agree on.

Certificates of the private CA are told apart by the DNS name each carries (and by their extended key
usage): a client or server checks the name, so a certificate of one role never passes for another.
"""

from __future__ import annotations

from mailbastion.pki import GATEWAY_LINK_NAME, INTERNAL_ROLE_NAME

MDA_NAME = "mda"  # the MDA's LMTP server certificate (the gateway's LMTP client checks this name)
GATEWAY_CLIENT_NAME = "gateway"  # the gateway's LMTP client certificate
LINK_NAME = GATEWAY_LINK_NAME  # the gateway's server certificate on the internal link (map push, relay)
INTERNAL_CLIENT_NAME = INTERNAL_ROLE_NAME  # the internal host's client certificate: the only one the link accepts

LMTP_PORT = 2424  # the MDA's listener (lmtp.listen)
MAP_PUSH_PORT = 2426  # the gateway's push listener (map_push.listen)
RELAY_PORT = 2526  # the gateway's relay listener for the internal host's outbound mail (relay_in.listen)

__all__ = ["GATEWAY_CLIENT_NAME", "INTERNAL_CLIENT_NAME", "LINK_NAME", "LMTP_PORT", "MAP_PUSH_PORT", "MDA_NAME",
           "RELAY_PORT"]
