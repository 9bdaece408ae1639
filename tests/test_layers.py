"""The layering of src/mailbastion, proven from the source: every import of every module (lazy imports in
functions and `if TYPE_CHECKING:` imports included) read with `ast`, folded into a graph between packages.

- no cycles between packages;
- `core` imports nothing of ours;
- the SMTP edge (`smtp`) imports no policy, spool, delivery, directory, mailbox, auth, spam, engines, config;
- every import follows the layer diagram (`MAY_IMPORT` below; docs/architecture.md shows it as a table);
- every package is placed in the diagram: a new package fails here until it is.

KNOWN lists tolerated edges outside the diagram, each with the reason; it is empty. The test fails on any
edge outside the diagram that is not KNOWN, and on a KNOWN edge that no longer exists (the list only shrinks).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src" / "mailbastion"
TOP = "mailbastion"  # the root package's own __init__ (its version string): anyone may import it

# -- the layer diagram (docs/architecture.md): which package may import which ----------------------------

BASE = {"core"}
MAY_IMPORT: dict[str, set[str]] = {
    # foundation
    "core": set(),
    "durable": set(),
    "metrics": set(),  # Prometheus counters the parts call (no-ops until `serve` enables them), the endpoint
    "private_files": {"durable"},  # files created with their mode from the start (keys, databases)
    "pki": BASE | {"private_files"},
    "tls_policy": BASE | {"config", "durable", "pki"},  # the one TLS policy of every listener and client
    "reports": BASE,  # DMARC and TLS-RPT reports we receive, parsed (defusedxml, bounded unpacking)
    "config": BASE,
    "dns": BASE,  # the resolver, alone
    "audit": BASE,  # the hash-chained audit log in its own database
    # protocol and services
    "smtp": BASE,  # the SMTP/LMTP protocol engine: a StageHandler and nothing else
    "auth": BASE | {"dns"},
    "engines": BASE | {"config", "durable", "metrics"},
    "spam": BASE | {"config", "durable"},
    "spool": BASE | {"config", "durable"},
    # what decides, delivers, stores
    "policy": BASE | {"config", "auth", "dns", "engines", "spam", "metrics"},
    "outbound": BASE | {"config", "dns", "private_files", "tls_policy", "auth"},  # DANE, MTA-STS, TLS-RPT; SRS; the
    # ARC seal of forwarded copies signs with our DKIM keys (auth/keys.py)
    "delivery": BASE | {"config", "durable", "dns", "smtp", "spool", "tls_policy", "outbound",
                        "private_files"},  # the sent log (bounce matching) is created 0600
    "mailbox": BASE | {"config", "durable", "smtp", "metrics"},
    "directory": BASE | {"config", "audit", "private_files"},
    "quarantine": BASE | {"config", "durable", "audit"},
    # encryption of confidential content: keys (sealed with the deployment key), S/MIME and OpenPGP, the outbound
    # policy, pick-up, at rest; its inbound check (crypto/inbound.py) is a policy check over the attachment
    # policy's recogniser of encrypted parts. The MDA reaches it only through ports (apps/mda.py wires it).
    "crypto": BASE | {"private_files", "engines", "policy"},
    # above them
    "gateway": BASE | {"config", "durable", "smtp", "policy", "spool", "quarantine", "auth", "dns", "engines",
                       "spam", "metrics"},  # the handler between the SMTP engine and the policy
    "submission": BASE | {"config", "auth", "dns", "smtp", "spool", "policy", "directory", "crypto", "metrics"},  # + login, send-as, holds; protect_outbound
    "domain_dns": BASE | {"config", "auth", "dns"},  # records our domains publish, and their live check
    # the acceptable use policy: versions and acceptances in the directory's database, notices through the spool
    "aup": BASE | {"config", "directory", "audit", "spool"},
    # joiners and leavers: dates, archives (Maildir); each minute also the policy's notices and the training round
    "lifecycle": BASE | {"config", "directory", "audit", "mailbox", "private_files", "aup", "training", "spool"},
    # security-awareness training (measure 8): modules, assignments in the directory's database, reminders and
    # phishing simulations committed to our spool, the simulation key (a private file)
    "training": BASE | {"config", "directory", "spool", "durable", "private_files"},
    "deploy": BASE | {"config", "pki", "private_files"},  # a split's host artefacts: gateway bundle, nftables, units
    # the web portal (internal role): directory, quarantine, queue control and spool writer, audit, our DNS
    # records and their check, the certificates for its HTTPS and the TLS measure; the lifecycle code that
    # sets and applies join and leave dates (as `mailbastion account start|leave` does)
    "portal": BASE | {"config", "durable", "private_files", "pki", "tls_policy", "audit", "directory",
                      "quarantine", "spool", "dns", "auth", "domain_dns", "measures", "crypto", "metrics", "aup",
                      "lifecycle", "training"},
    # the ten measures, probed (measures/): the portal's dashboard and `mailbastion audit` read them; the
    # live probes speak SMTP and TLS themselves, read the directory (leavers), the recipient map, the spam
    # model, the certificates, and run `dns check`; `av status` is run as a command, not imported
    "measures": BASE | {"config", "directory", "domain_dns", "dns", "auth", "spam", "pki", "lifecycle", "aup",
                 "training"},
    # Dovecot run by the internal role: our directory decides logins, the MDA's Maildir layout, the spam model
    # learns Junk moves, and the one TLS policy of every listener.
    "imap": BASE | {"config", "durable", "directory", "mailbox", "spam", "tls_policy", "metrics"},
    # the report-a-phish loop (internal role): reads the Maildirs (mailbox), holds copies (quarantine, its
    # AuditSink port), learns (spam: ModelStore, unwrap, header decoding); the directory only through a port
    "phish_report": BASE | {"durable", "mailbox", "quarantine", "spam"},
}
_SERVICES = set(MAY_IMPORT)
MAY_IMPORT["testing"] = _SERVICES  # the shipped test kit: fakes and loopback servers; src never imports it
MAY_IMPORT["apps"] = _SERVICES  # wiring: the only place (with cli) that builds concrete objects
MAY_IMPORT["cli"] = _SERVICES | {"apps"}
MAY_IMPORT["__main__"] = {"cli"}

SMTP_MUST_NOT_IMPORT = {"policy", "spool", "delivery", "directory", "mailbox", "auth", "spam", "engines", "config"}

# -- tolerated edges outside the diagram, each with its reason (none today; the list only shrinks) ----------

KNOWN: dict[tuple[str, str], str] = {
}


# -- reading the imports -----------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module `source` (the text of `module`) imports, wherever the import statement is: at the top,
    in a function, under `if TYPE_CHECKING:`. `from a import b` yields `a.b` (b may be a module), relative
    imports are resolved, and `importlib.import_module("...")` with a literal name counts too."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            yield node.args[0].value


def package_of(module: str) -> str | None:
    """The package (first name below mailbastion) a module belongs to; TOP for the root's own names; None
    for a module not ours."""
    parts = module.split(".")
    if parts[0] != TOP:
        return None
    if len(parts) == 1:
        return TOP
    if (ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file():
        return parts[1]
    return TOP  # `from mailbastion import __version__`: a name of the root package


def sources() -> Iterator[Path]:
    yield from sorted(ROOT.rglob("*.py"))


def build_graph() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> where ("module:line"s are not kept; module names are)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sources():
        module = module_name(path)
        src = package_of(module)
        assert src is not None
        text = path.read_text(encoding="utf-8")
        for target in imported_modules(text, module, is_package=path.name == "__init__.py"):
            dst = package_of(target)
            if dst is not None and dst != src:
                edges.setdefault((src, dst), []).append(module)
    return edges


GRAPH = build_graph()
PACKAGES = {pkg for pkg in map(package_of, map(module_name, sources())) if pkg is not None and pkg != TOP}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


def _show(edges: set[tuple[str, str]]) -> str:
    return "; ".join(f"{a} -> {b} (in {', '.join(sorted(set(GRAPH.get((a, b), []))))})" for a, b in sorted(edges))


# -- the rules -------------------------------------------------------------------------------------------


def test_the_reader_sees_every_kind_of_import() -> None:
    source = """
import mailbastion.core.envelope
from mailbastion.spool import writer
from . import sibling
from ..audit.log import AuditLog
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
def later():
    from mailbastion.directory.store import Directory
    importlib.import_module("mailbastion.mailbox.maildir")
"""
    found = set(imported_modules(source, "mailbastion.quarantine.release"))
    assert {"mailbastion.core.envelope", "mailbastion.spool.writer", "mailbastion.quarantine.sibling",
            "mailbastion.audit.log.AuditLog", "mailbastion.config.schema.Settings",
            "mailbastion.directory.store.Directory", "mailbastion.mailbox.maildir"} <= found
    assert package_of("mailbastion.audit.log.AuditLog") == "audit" and package_of("mailbastion.__version__") == TOP
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]


def test_every_package_is_placed_in_the_diagram() -> None:
    unplaced = PACKAGES - set(MAY_IMPORT)
    assert not unplaced, f"place {sorted(unplaced)} in MAY_IMPORT here and in the table of docs/architecture.md"


def test_the_diagram_itself_has_no_cycles() -> None:
    allowed = {(a, b) for a, bs in MAY_IMPORT.items() for b in bs}
    assert not cycles(allowed)


def test_no_cycles_between_packages() -> None:
    found = cycles(set(GRAPH) - set(KNOWN))
    assert not found, f"package cycles: {found}; edges: {_show({e for e in GRAPH if {*e} <= {*sum(found, [])}})}"


def test_core_imports_nothing_of_ours() -> None:
    assert not {e for e in GRAPH if e[0] == "core" and e[1] != TOP}, _show({e for e in GRAPH if e[0] == "core"})


def test_the_root_package_imports_nothing_of_ours() -> None:
    source = (ROOT / "__init__.py").read_text(encoding="utf-8")
    assert not [m for m in imported_modules(source, TOP, is_package=True) if package_of(m)]


def test_the_smtp_edge_imports_no_policy_nor_services() -> None:
    bad = {e for e in GRAPH if e[0] == "smtp" and e[1] in SMTP_MUST_NOT_IMPORT} - set(KNOWN)
    assert not bad, f"the SMTP edge speaks protocol only: {_show(bad)}"


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_follow_the_layer_diagram(package: str) -> None:
    outside = {e for e in GRAPH if e[0] == package and e[1] not in MAY_IMPORT[package] | {TOP}} - set(KNOWN)
    assert not outside, f"not in the layer diagram (MAY_IMPORT; docs/architecture.md): {_show(outside)}"


def test_known_edges_still_exist() -> None:
    gone = [f"{a} -> {b} ({why})" for (a, b), why in KNOWN.items() if (a, b) not in GRAPH]
    assert not gone, f"delete from KNOWN what is gone: {gone}"
