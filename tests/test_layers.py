"""Layers point down: the imports of every module under minisearch/ (top-level and inside
functions, read with ast) form no cycle, and none goes from a lower layer to a higher one.

A package's `__init__` may import its own submodules (a facade or a lazy factory, as
agent/backends' `load_backend`); every other edge counts. Cycles are checked twice: between
modules, and between the top-level parts of the package (agent, tiny, ...), where one known
cycle remains (see ALLOWED_PART_CYCLES).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "minisearch"

# Bottom to top; a part may import its own layer (without cycles) and the layers below it.
LAYERS = [
    ("basics", {"errors", "settings", "jsonl", "records", "needs", "steplog", "rundir", "checkpoint", "metrics"}),
    ("world, search, models, agent", {"data", "search", "tiny", "pretrained", "agent"}),
    ("stages that make tasks, train and score", {"ramp", "train", "eval", "export"}),
    ("the recipe runner", {"pipeline"}),
    ("the commands", {"cli"}),
]
# Cycles between parts allowed (none: tiny builds on agent, whose backend reads the tiny model's
# marker through records); the test asserts it is exactly what is found, so it cannot grow.
ALLOWED_PART_CYCLES: set[frozenset] = set()


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The minisearch modules `name` imports anywhere in its file (the longest known prefix of
    each imported name: `from minisearch.search import hit` is minisearch.search.hit)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in names:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("minisearch.") and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, less a package's imports of its own submodules."""
    known = modules()
    edges = {}
    for name, path in known.items():
        own = name + "." if path.name == "__init__.py" else None
        edges[name] = {t for t in imports(name, path, known) if not (own and t.startswith(own))}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def part(module: str) -> str:
    return module.split(".")[1]


def layer_of(module: str) -> int:
    return next(i for i, (_, parts) in enumerate(LAYERS) if part(module) in parts)


def test_every_part_has_a_layer():
    parts = {part(m) for m in modules() if m != "minisearch"}
    assert parts == set().union(*(p for _, p in LAYERS)), "name each new part's layer in LAYERS"


def test_no_cycle_between_modules():
    assert cycles(graph()) == []


def test_the_only_cycle_between_parts_is_the_known_one():
    by_part: dict[str, set[str]] = {}
    for source, targets in graph().items():
        if source != "minisearch":
            by_part.setdefault(part(source), set()).update(part(t) for t in targets if part(t) != part(source))
    assert {frozenset(c) for c in cycles(by_part)} == ALLOWED_PART_CYCLES


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for source, targets in graph().items() if source != "minisearch"
              for target in sorted(targets) if layer_of(target) > layer_of(source)]
    assert upward == []


def test_the_reader_sees_function_level_imports():
    """The check reads imports inside functions too (most stages import heavy libraries lazily)."""
    edges = graph()
    assert "minisearch.rundir" in edges["minisearch.tiny.init"]  # imported inside a function there
    assert "minisearch.search.bm25s_terms" in edges["minisearch.search.bm25s_build"]
