"""No import cycles among landscape's modules.

The graph has an edge A → B for every ``import``/``from ... import`` in A that names B (a module of
the package), wherever it is written — at the top, inside a function (a deferred import is still a
dependency, and deferring was how the old hessian ↔ optim cycle was hidden) — except under
``if TYPE_CHECKING:``. ``from pkg import name`` points at ``pkg.name`` when that is a module, else at
``pkg`` (its ``__init__``). Parent packages imported implicitly by Python are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import landscape

ROOT = Path(landscape.__file__).resolve().parent


def _name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> Dict[str, Set[str]]:
    """module → the package modules it imports (see the module docstring)."""
    files = {_name(p, root): p for p in root.rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        out: Set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.add(sub if sub in files else target)
        graph[mod] = {t for t in out if t in files and t != mod}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 40 and "landscape.hessian.verdict" in graph
    assert cycles(graph) == []


def test_the_walker_sees_deferred_imports_and_finds_cycles(tmp_path):
    pkg = tmp_path / "landscape"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("def f():\n    from ..b import g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nfrom .a import x\n"
                              "if TYPE_CHECKING:\n    from . import c\n")
    (pkg / "c.py").write_text("from .b import g\n")
    graph = import_graph(pkg)
    assert graph["landscape.a.x"] == {"landscape.b"} and graph["landscape.b"] == {"landscape.a.x"}
    assert cycles(graph) == [["landscape.a.x", "landscape.b"]]     # c → b only under TYPE_CHECKING


def test_hessian_and_optim_depend_one_way():
    graph = import_graph()
    optim = [m for m in graph if m.startswith("landscape.optim")]
    assert not any(t.startswith("landscape.hessian") for m in optim for t in graph[m])
