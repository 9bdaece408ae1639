"""Outbound mail from our users: DKIM signing now; AUTH and the submission listener later."""
