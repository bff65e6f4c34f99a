"""No import cycles in ddpm/, backend/ or worker/.

The graph is built from the source (AST), so it sees every import: module level, inside
functions (a lazy import still ties two modules together), and the package ``__init__`` files
that importing ``a.b.c`` runs first. A failure prints each cycle with the file and line of
every import on it.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ddpm", "backend", "worker")

Edge = tuple[str, str, str]  # (importer, imported, "file:line")


def find_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the packages (a package is its __init__)."""
    modules = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """Dotted names an import statement needs, relative imports resolved.

    ``from a import b`` needs the submodule a.b when there is one (a partly imported package a
    is fine then), else the name b that a's __init__ defines, so all of a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}"
            targets = set()
            for name in _imported_names(node, module, is_package, modules):
                target = _known(name, modules)
                if target is None:
                    continue
                targets.add(target)
                # importing a.b.c runs a/__init__ and a/b/__init__ first; a module's own parent
                # packages are already being imported when it runs, so they add nothing
                parts = target.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in modules and not module.startswith(parent + "."):
                        targets.add(parent)
            edges += [(module, t, where) for t in sorted(targets) if t != module]
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle through each strongly connected group of modules (Tarjan + BFS)."""
    graph: dict[str, dict[str, str]] = {}
    for a, b, where in edges:
        graph.setdefault(a, {}).setdefault(b, where)
        graph.setdefault(b, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursive Tarjan: the graphs here are a few hundred nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for group in groups:
        members, start = set(group), group[0]
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt = []
            for v in frontier:
                for w in graph[v]:
                    if w in members and w not in previous:
                        previous[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while True:
            path.append(previous[path[-1]])
            if path[-1] == start:
                break
        path.reverse()
        cycles.append([(a, b, graph[a][b]) for a, b in zip(path, path[1:])])
    return cycles


def describe(cycle: list[Edge]) -> str:
    return "\n".join([" -> ".join([cycle[0][0]] + [b for _, b, _ in cycle])]
                     + [f"    {a} imports {b} at {where}" for a, b, where in cycle])


def test_ddpm_backend_and_worker_have_no_import_cycles():
    modules = find_modules(ROOT, PACKAGES)
    assert "ddpm.train.trainer" in modules and "backend.jobs" in modules and "worker" in modules
    cycles = find_cycles(import_edges(modules))
    assert not cycles, "import cycles:\n" + "\n".join(describe(c) for c in cycles)


def test_the_checker_finds_a_cycle_through_a_package_init_and_a_lazy_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")        # pkg -> pkg.a
    (pkg / "a.py").write_text("def f():\n    from pkg.sub.b import B\n")  # lazy: pkg.a -> pkg.sub.b
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from pkg import A\n")     # pkg.sub.b -> pkg
    (pkg / "ok.py").write_text("from . import a\nimport pkg.sub\n")  # no way back to pkg.ok
    modules = find_modules(tmp_path, ("pkg",))
    cycles = find_cycles(import_edges(modules))
    assert len(cycles) == 1
    assert {a for a, _, _ in cycles[0]} == {"pkg", "pkg.a", "pkg.sub.b"}
    text = describe(cycles[0])
    assert "pkg.a imports pkg.sub.b at" in text and "b.py:1" in text


def test_a_module_importing_its_own_package_init_is_no_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("from .b import B\nA = 1\n")   # the parent package is already loading
    (pkg / "b.py").write_text("B = 2\n")
    assert find_cycles(import_edges(find_modules(tmp_path, ("pkg",)))) == []
