"""The import graph of `ipt_ms` and `parity`: no cycles, and the layering of docs/architecture.md.

Pure `ast` over the source files (nothing is imported, so it runs in well under a second).
Every import counts: at module level, inside functions (a function-level import still ties the two
modules together, and a cycle through one fails at run time, only later) and under
``if TYPE_CHECKING:`` (two modules that name each other's types cannot be read or changed apart,
and the cycle runs the day one of those names is needed at run time). Cycles are checked between
modules and between the subpackages of `ipt_ms` (`ipt_ms.cli` <-> `ipt_ms.doctor` is a cycle even
when no single module pair is).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ipt_ms", "parity")

# Lowest first. A module may import its own layer and the layers below it, never one above.
# A name stands for itself and everything under it; the longest listed name wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", (
        "ipt_ms.errors", "ipt_ms.tasks", "ipt_ms.spec", "ipt_ms.fileio", "ipt_ms.signals", "ipt_ms.runtime",
        "ipt_ms.compile_cache", "ipt_ms.progress", "ipt_ms.provenance", "ipt_ms.machine", "ipt_ms.config",
        "ipt_ms.tiling", "ipt_ms.presets",
    )),
    ("models", ("ipt_ms.models",)),
    ("data, weights, metrics", ("ipt_ms.data", "ipt_ms.convert", "ipt_ms.metrics", "ipt_ms.memory")),
    ("applications", (
        "ipt_ms.inference", "ipt_ms.registry", "ipt_ms.predictors", "ipt_ms.onnx_runtime", "ipt_ms.export",
        "ipt_ms.train", "ipt_ms.eval", "ipt_ms.compare", "ipt_ms",
    )),
    ("tools", ("ipt_ms.doctor",)),
    ("cli", ("ipt_ms.cli", "ipt_ms.__main__")),
)

# Entry points kept at an old path for a caller outside the package: in the CLI layer, and each its own
# node in the subpackage graph (none today; scripts/train_distributed.sh runs `ipt_ms.cli.preflight`).
ENTRY_POINT_SHIMS: tuple[str, ...] = ()

# `parity` (the PyTorch twin and the cross-framework comparison) is a layer of its own beside the
# MindSpore package: it may use `ipt_ms` up to this layer, never the tools or the CLI ...
PARITY_MAY_USE_UP_TO = "applications"

# ... and `ipt_ms` imports it only at these integration points, (importer, imported): reason.
PARITY_INTEGRATION_POINTS: dict[tuple[str, str], str] = {
    ("ipt_ms.export", "parity.torch_runner"): "`--format torch` exports the PyTorch twin",
    ("ipt_ms.predictors", "parity.torch_runner"): "the `torch` backend of restore / eval runs the twin",
    ("ipt_ms.doctor.checks", "parity.compare"): "doctor's forward-parity check",
    ("ipt_ms.doctor", "parity.seeded"): "doctor seeds both frameworks' weights alike",
    ("ipt_ms.doctor.checks", "parity.seeded"): "doctor's mixed-precision check seeds both frameworks alike",
    ("ipt_ms.doctor.checks", "parity.torch_runner"): "doctor's training-step parity builds the twin",
    ("ipt_ms.doctor.checks", "parity.train_parity"): "doctor's training-step parity check",
    ("ipt_ms.doctor.msrun_worker", "parity.seeded"): "the data-parallel worker seeds like the twin",
    ("ipt_ms.doctor.msrun_worker", "parity.train_parity"): "the data-parallel worker's reference batches",
    ("ipt_ms.cli.make_weights", "parity.seeded"): "`make-weights` writes the twin's seeded weights",
    ("ipt_ms.cli.parity", "parity.compare"): "`ipt-ms parity` is the comparison's command",
}

# The package root runs before any `ipt_ms.x` import anyway (it sets environment defaults), so an
# explicit `import ipt_ms` adds no dependency a layer could avoid.
ROOT_IMPORT_ALLOWED_FROM_ANYWHERE = "ipt_ms"


@dataclass(frozen=True)
class Edge:
    """One import statement from module `source` to module `target`."""

    source: str
    target: str
    line: int
    type_only: bool

    def where(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line}{', type only' if self.type_only else ''})"


def module_files() -> dict[str, Path]:
    """Dotted module name -> its file, for every module of the two packages (a package is its __init__)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _nearest_module(name: str, modules: dict[str, Path]) -> str | None:
    """`name` itself if it is a module of ours, else its nearest enclosing one (`ipt_ms.x.Class` -> `ipt_ms.x`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    inside.update(id(sub) for sub in ast.walk(child))
    return inside


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import between our modules, at any depth, relative imports resolved."""
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        type_only = _type_checking_nodes(tree)
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from pkg import module` depends on the module; `from mod import name` on the module.
                names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                         for alias in node.names]
            else:
                continue
            for name in names:
                target = _nearest_module(name, modules)
                edge = Edge(module, target or "", node.lineno, id(node) in type_only)
                if target is not None and target != module and edge not in edges:
                    edges.append(edge)
    return edges


def subpackage(module: str) -> str:
    """`ipt_ms.train.loop` -> `ipt_ms.train`; top-level modules, `parity.*` and entry-point shims stand for
    themselves."""
    if module in ENTRY_POINT_SHIMS:
        return module
    return ".".join(module.split(".")[:2])


def find_cycles(edges: list[Edge], group=lambda module: module) -> list[list[str]]:
    """One cycle path (first node repeated at the end) per strongly connected set of nodes.

    A node is `group(module)`: the module itself, or e.g. its subpackage.
    """
    graph, groups = strongly_connected(edges, group)
    return [_cycle_through(members, graph) for members in groups]


def strongly_connected(edges: list[Edge], group=lambda module: module) -> tuple[dict[str, set[str]], list[list[str]]]:
    """The graph of `group(module)` nodes, and its sets of more than one node that all reach each other."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        source, target = group(edge.source), group(edge.target)
        graph.setdefault(source, set())
        graph.setdefault(target, set())
        if source != target:
            graph[source].add(target)
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return graph, sorted(groups)


def _cycle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path from the group's first module back to itself, inside the group."""
    members = set(group)
    start = group[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {group}")  # Tarjan said there is one


def layer_of(module: str) -> int | None:
    """Index into LAYERS of the module's layer (None for `parity`)."""
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for position, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[0]):
                best = (len(name), position)
    return None if best is None else best[1]


def layer_violations(edges: list[Edge], modules: dict[str, Path]) -> list[str]:
    """The imports that break the layering, each with the rule it breaks."""
    names = [name for name, _ in LAYERS]
    parity_ceiling = names.index(PARITY_MAY_USE_UP_TO)
    problems = [f"{module}: in no layer of LAYERS" for module in modules
                if module.startswith("ipt_ms") and layer_of(module) is None]
    for edge in edges:
        if edge.target == ROOT_IMPORT_ALLOWED_FROM_ANYWHERE:
            continue
        source_parity = edge.source.split(".")[0] == "parity"
        target_parity = edge.target.split(".")[0] == "parity"
        if source_parity and target_parity:
            continue
        if target_parity:
            if (edge.source, edge.target) not in PARITY_INTEGRATION_POINTS:
                problems.append(f"{edge.where()}: ipt_ms may import parity only at PARITY_INTEGRATION_POINTS")
            continue
        target_layer = layer_of(edge.target)
        if target_layer is None:
            continue
        if source_parity:
            if target_layer > parity_ceiling:
                problems.append(f"{edge.where()}: parity may use ipt_ms up to '{PARITY_MAY_USE_UP_TO}', "
                                f"not '{names[target_layer]}'")
            continue
        source_layer = layer_of(edge.source)
        if source_layer is not None and target_layer > source_layer:
            problems.append(f"{edge.where()}: '{names[source_layer]}' imports up into '{names[target_layer]}'")
    return problems


def test_the_graph_sees_every_kind_of_import():
    """Guard the scanner itself: relative, function-level and `from pkg import module` imports are edges."""
    modules = module_files()
    edges = {(edge.source, edge.target) for edge in import_edges(modules)}
    assert ("ipt_ms.train", "ipt_ms.train.config") in edges  # module level, absolute
    assert ("ipt_ms.train", "ipt_ms.train.loop") in edges  # inside a function
    assert ("ipt_ms.cli", "ipt_ms.compile_cache") in edges  # `from ipt_ms import compile_cache`
    assert len(modules) > 90 and len(edges) > 300


def test_relative_imports_resolve(tmp_path, monkeypatch):
    """A relative import in a package and in a plain module lands on the right module."""
    package = tmp_path / "ipt_ms"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub import leaf\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("def f():\n    from .. import top\n    from .sibling import g\n")
    (package / "sub" / "sibling.py").write_text("g = 1\n")
    (package / "top.py").write_text("")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    modules = module_files()
    edges = {(edge.source, edge.target) for edge in import_edges(modules)}
    assert edges == {
        ("ipt_ms", "ipt_ms.sub.leaf"),
        ("ipt_ms.sub.leaf", "ipt_ms.top"),
        ("ipt_ms.sub.leaf", "ipt_ms.sub.sibling"),
    }


def test_cycle_finder_reports_the_path():
    edges = [Edge("a", "b", 1, False), Edge("b", "c", 1, False), Edge("c", "a", 1, False),
             Edge("c", "d", 1, False), Edge("d", "e", 1, True), Edge("e", "f", 1, False)]
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    edges.append(Edge("f", "d", 1, False))  # a cycle through a type-only import is still one
    assert find_cycles(edges) == [["a", "b", "c", "a"], ["d", "e", "f", "d"]]
    packages = [Edge("p.x.one", "p.y.one", 1, False), Edge("p.y.two", "p.x.two", 1, False)]
    assert find_cycles(packages) == []
    assert find_cycles(packages, subpackage) == [["p.x", "p.y", "p.x"]]


def _describe(cycles: list[list[str]], edges: list[Edge], group=lambda module: module) -> str:
    """Each cycle's path, then the import statements that make up each step."""
    lines = []
    _, groups = strongly_connected(edges, group)
    for cycle, members in zip(cycles, groups):
        lines.append("  " + " -> ".join(cycle) + f"   (tied together: {', '.join(members)})")
        for source, target in zip(cycle, cycle[1:]):
            lines.extend("      " + edge.where() for edge in edges
                         if group(edge.source) == source and group(edge.target) == target)
    return "\n".join(lines)


def test_no_import_cycles():
    edges = import_edges(module_files())
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between modules:\n" + _describe(cycles, edges)


def test_no_cycles_between_subpackages():
    edges = [edge for edge in import_edges(module_files()) if edge.target != ROOT_IMPORT_ALLOWED_FROM_ANYWHERE]
    cycles = find_cycles(edges, subpackage)
    assert not cycles, "import cycles between subpackages:\n" + _describe(cycles, edges, subpackage)


def test_imports_follow_the_layers():
    modules = module_files()
    problems = layer_violations(import_edges(modules), modules)
    assert not problems, "imports against the layers (docs/architecture.md):\n" + "\n".join(
        "  " + problem for problem in problems)


def test_integration_points_are_all_still_used():
    """A stale allow-list entry would silently widen the contract for the next import."""
    used = {(edge.source, edge.target) for edge in import_edges(module_files())}
    stale = sorted(set(PARITY_INTEGRATION_POINTS) - used)
    assert not stale, f"PARITY_INTEGRATION_POINTS lists imports that no longer exist: {stale}"
