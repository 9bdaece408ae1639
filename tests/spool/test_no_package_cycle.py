"""core, spool and delivery form no import cycle: spool knows delivery only through the core port and the
`bounce` callable apps/ gives it. Every import counts, including those inside functions (ast, not runtime).
The project-wide layering test lives elsewhere; this one guards the queue's own edges."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "mailbastion"
PACKAGES = ("core", "spool", "delivery")


def imported_packages(package: str, root: Path = SRC) -> dict[str, set[str]]:
    """{top-level mailbastion package imported: files importing it} for every module of `package`."""
    found: dict[str, set[str]] = {}
    for path in (root / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names = [f"mailbastion.{package}"]  # relative imports stay inside the package
            for name in names:
                parts = name.split(".")
                if parts[0] == "mailbastion" and len(parts) > 1:
                    found.setdefault(parts[1], set()).add(path.name)
    return found


def test_core_spool_delivery_have_no_cycle() -> None:
    graph = {p: set(imported_packages(p)) - {p} for p in PACKAGES}
    assert set(imported_packages("core")) <= {"core"}, f"core imports {graph['core']}"
    assert "delivery" not in graph["spool"], f"spool imports delivery in {imported_packages('spool')['delivery']}"
    # no cycle among the three (any length)
    for start in PACKAGES:
        seen: set[str] = set()
        todo = [d for d in graph[start] if d in PACKAGES]
        while todo:
            p = todo.pop()
            assert p != start, f"import cycle through {start}: {graph}"
            if p not in seen:
                seen.add(p)
                todo.extend(d for d in graph[p] if d in PACKAGES)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "manager.py").write_text(
        "from . import record\nimport mailbastion.core.outcome\n"
        "def f():\n    from mailbastion.delivery.dsn import build_dsn\n    return build_dsn\n")
    assert imported_packages("spool", tmp_path) == {"spool": {"manager.py"}, "core": {"manager.py"},
                                                    "delivery": {"manager.py"}}
