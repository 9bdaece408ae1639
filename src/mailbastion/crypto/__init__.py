"""Encryption of confidential content: S/MIME and OpenPGP keys, the outbound policy, secure pick-up,
inbound encrypted mail, and encryption at rest in the MDA.

Nothing is imported here on purpose: the gateway loads only `crypto.inbound` (the ENCRYPTED_* check,
no key material), the internal role loads the key store and the at-rest sealer. Import the modules:

    keystore.KeyStore          users' keys (private keys sealed with the deployment key) and outsiders' keys
    smime_ca.SmimeAuthority    the per-deployment S/MIME CA that issues users' certificates
    classify.Classifier        is_confidential(message, envelope) -> Classification
    outbound.protect_outbound  (message, recipients, keys, policy) -> Decision
    pickup.PickupStore         the secure pick-up: a message sealed under a link token and a one-time code
    discovery.KeyDiscovery     WKD and LDAP for outsiders' OpenPGP keys
    collect.CertificateCollector   outsiders' S/MIME certificates from the signed mail they send us
    at_rest.AtRestSealer       the MDA's encryption of each delivered copy
    inbound.EncryptedMailCheck the gateway's check: ENCRYPTED_SMIME / ENCRYPTED_PGP, opaque content
"""

from __future__ import annotations

__all__: list[str] = []
