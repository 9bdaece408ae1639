"""Composition roots, one per role: wiring only. Only apps/ and cli/ build concrete objects."""
