"""No import cycles between the package's modules.

The graph is built here from the source (``ast``): every ``import`` and ``from ... import``,
relative ones resolved against the importing module, at any depth (an import inside a function
is an edge like any other: it runs whenever the function does). As in
``shared/tools/import_cycles.py``, package ``__init__`` facades and imports under
``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    found = {}
    for path in (src / package).rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        is_init = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_init else parts)] = (path, is_init)
    return found


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's non-facade modules it imports (anywhere in its body)."""
    modules = _modules(src, package)

    def resolve(name: str) -> str | None:  # the deepest module a dotted name lies in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_init) in modules.items():
        if is_init:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = {
            id(n) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }  # fmt: skip
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package, level - 1 up
                    here = name.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join(here + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                module = resolve(target)
                if module is not None and module != name and not modules[module][1]:
                    edges.add(module)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph(SRC, "miaudit")
    assert len(graph) > 100 and "miaudit.models.executors" in graph["miaudit.experiments.grid"]  # it did read the imports
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_relative_and_function_level_imports_is_found(tmp_path):
    _write(tmp_path, {
        "fake/__init__.py": "from fake.a import x\n",  # a facade: not an edge
        "fake/a.py": "from . import b\nx = 1\n",  # relative
        "fake/sub/__init__.py": "",
        "fake/sub/c.py": "def f():\n    from ...fake import a\n",  # function-level, two levels up
        "fake/b.py": "def g():\n    import fake.sub.c\n",
        "fake/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fake import a\nimport fake\n",
    })  # fmt: skip
    graph = import_graph(tmp_path, "fake")
    assert graph["fake.a"] == {"fake.b"} and graph["fake.b"] == {"fake.sub.c"}
    assert graph["fake.d"] == set()  # TYPE_CHECKING and the facade are left out
    assert cycles(graph) == [["fake.a", "fake.b", "fake.sub.c"]]


def test_no_cycle_in_a_chain(tmp_path):
    _write(tmp_path, {"fake/__init__.py": "", "fake/a.py": "from fake import b\n", "fake/b.py": "import os\n"})
    graph = import_graph(tmp_path, "fake")
    assert graph == {"fake.a": {"fake.b"}, "fake.b": set()} and cycles(graph) == []
