"""The layers of the package import one way (docs/architecture.md).

Every import of a dermsr module, function-local ones included, is read from the source with
``ast``. A unit (a top-level module or subpackage of ``dermsr``) may import only units below
it in :data:`LAYERS`; nothing may import the package root. Within a unit, modules must not
import each other in a cycle either.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dermsr"

#: Lowest first. A unit may import only units that come before it.
LAYERS = (
    "_version",
    "errors",
    "machine",
    "_extras",
    "validation",
    "imaging",
    "io",
    "data",
    "models",
    "degrade",
    "export",
    "enhance",
    "backends",
    "bench",
    "evaluate",
    "train",
    "folder",
    "transforms",
    "integrations",
    "cli",
    "__main__",
)

#: Module cycles allowed, each with its reason.
ALLOWED_CYCLES = {
    frozenset({"dermsr.degrade.pipeline", "dermsr.degrade.presets"}):
        "Degrader.preset(name) is a convenience constructor that looks the preset up when called",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every dermsr module ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "dermsr"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "dermsr":
                continue
            # "from .pkg import name" may name a submodule
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                        or (SRC.parent / Path(*sub.split("."))).is_dir() else target)
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert units == set(LAYERS), f"add new units to LAYERS and docs/architecture.md: {units ^ set(LAYERS)}"


def test_units_import_only_lower_layers(graph):
    rank = {u: i for i, u in enumerate(LAYERS)}
    bad = []
    for module, targets in graph.items():
        src = _unit(module)
        if src == "<root>":
            continue  # the package root re-exports the public names
        for t in targets:
            dst = _unit(t)
            if dst == "<root>":
                bad.append(f"{module} imports the package root ({t}); import the defining module")
            elif dst != src and rank[dst] > rank[src]:
                bad.append(f"{module} ({src}) imports {t} ({dst}), a higher layer")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle_between_modules(graph):
    """No module reaches itself through imports (function-local ones included), except through
    the package ``__init__`` files that re-export their submodules."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for t in targets:
            if t in graph and t != module and not t.startswith(module + "."):
                edges[module].add(t)
    inits = {m for m in graph if (SRC.parent / Path(*m.split(".")) / "__init__.py").exists()}
    cycles = []
    for start in graph:
        if start in inits:
            continue
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start and frozenset(path) not in ALLOWED_CYCLES:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen and nxt not in inits:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles)))
