"""One concern per module. `import_all()` imports every known check, which registers it and its symbols
(policy/check.py `register_emits`) so that the score table is validated against all of them, enabled or
not (apps/pipeline.py calls it). Importing one check module imports only what it needs: `av status` loads
the anti-virus check without the spam classifier's libraries."""

import importlib
import pkgutil

__all__ = ["import_all"]


def import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
