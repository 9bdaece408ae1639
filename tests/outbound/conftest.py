"""Fixtures of the outbound tests: the loopback world of outbound_world.py."""

from outbound_world import world  # noqa: F401  (a fixture)
