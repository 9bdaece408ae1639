"""Outbound mail from our users (RFC 6409), on the internal host: the submission handler (AUTH, sender
binding, limits, hijack signs), the encryption policy, DKIM signing, and the outbox that hands messages to
the gateway's relay listener. The protocol is the engine's (smtp/); the wiring is apps/role_submission.py."""
