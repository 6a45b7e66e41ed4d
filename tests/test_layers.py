"""The layer rule: a module imports only from its own layer or below, and no modules import in a cycle.

Layers, lowest first (docs/architecture.md draws them):

1. `types`, `config`, `registry`, `device`, `missing`, `prompts`
2. `ingest`, `encoders`, `store`, `generate`
3. `index`, `retrieve`, `rerank`, `train`
4. `answer`
5. `pipeline`
6. `cli`, `serve`, `connectors`, `evals`, and the package `mmrag/__init__.py` (its lazy re-exports)

Every import counts: top-level, inside functions (lazy) and under `TYPE_CHECKING`. `evals/`,
`connectors/` and `prompts/` are read as `mmrag.evals`, `mmrag.connectors` and `mmrag.prompts`, the
names they install under. There is no exemption list.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "mmrag": ROOT / "mmrag",
    "mmrag.evals": ROOT / "evals",
    "mmrag.connectors": ROOT / "connectors",
    "mmrag.prompts": ROOT / "prompts",
}
LAYERS = {
    "types": 1,
    "config": 1,
    "config_sources": 1,
    "registry": 1,
    "device": 1,
    "missing": 1,
    "prompts": 1,
    "ingest": 2,
    "encoders": 2,
    "store": 2,
    "generate": 2,
    "index": 3,
    "retrieve": 3,
    "rerank": 3,
    "train": 3,
    "answer": 4,
    "pipeline": 5,
    "cli": 6,
    "serve": 6,
    "connectors": 6,
    "evals": 6,
}
TOP = 6  # the package `mmrag` itself


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the installed package."""
    out: dict[str, Path] = {}
    for prefix, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([prefix, *parts])] = path
    return out


def layer(module: str) -> int | None:
    """The layer of a module: by its first name below `mmrag` (None: a module no layer names)."""
    parts = module.split(".")
    return TOP if len(parts) == 1 else LAYERS.get(parts[1])


def imports(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}, every import statement counted."""

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from pkg import mod` imports the module `pkg.mod`; `from mod import name` imports `mod`
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                if target.split(".")[0] != "mmrag":
                    continue
                found = known(target)
                if found is not None and found != mod:
                    edges[mod].setdefault(found, node.lineno)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_every_module_has_a_layer() -> None:
    mods = modules()
    assert len(mods) > 50, "the package sources were not found"
    unplaced = sorted(m for m in mods if layer(m) is None)
    assert not unplaced, "modules no layer names (add them to LAYERS and docs/architecture.md): " + ", ".join(
        unplaced
    )


def test_no_upward_imports() -> None:
    mods = modules()
    edges = imports(mods)
    upward = [
        f"{mods[src].relative_to(ROOT)}:{line}: {src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, targets in sorted(edges.items())
        for dst, line in sorted(targets.items())
        if (layer(dst) or 0) > (layer(src) or TOP)
    ]
    print("\n".join(upward))
    assert not upward, f"{len(upward)} upward imports:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    mods = modules()
    edges = imports(mods)
    found = cycles(edges)
    lines = []
    for component in found:
        members = set(component)
        lines.append("cycle: " + " <-> ".join(component))
        lines += [
            f"  {mods[src].relative_to(ROOT)}:{line}: {src} imports {dst}"
            for src in component
            for dst, line in sorted(edges.get(src, {}).items())
            if dst in members
        ]
    print("\n".join(lines))
    assert not found, f"{len(found)} import cycles:\n" + "\n".join(lines)


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The rule reads imports inside functions and under TYPE_CHECKING, and finds a two-module cycle."""
    edges = imports(modules())
    # `mmrag.pipeline` imports the answer stage only lazily, inside `ask`
    assert "mmrag.answer.ask" in edges["mmrag.pipeline"]
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    assert layer("mmrag") == TOP and layer("mmrag.evals.multihop") == 6 and layer("mmrag.types") == 1
