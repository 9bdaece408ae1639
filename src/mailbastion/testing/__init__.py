"""Test kit shipped with the package: a loopback DNS server, SMTP dialogue helpers, fakes."""
