"""The data path walks forward: no import cycle among vvkit modules, counting imports inside functions (an AST walk
of every module, so a hidden `from vvkit.x import y` in a function body counts as much as one at the top)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vvkit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: vvkit modules it imports anywhere in its body}; `from vvkit.pkg import name` counts the submodule
    `vvkit.pkg.name` when it exists, else the package."""
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("vvkit")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vvkit"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in mods else node.module)
        # a package's __init__ importing its own submodules is not a cycle with them
        graph[name] = {d for d in deps if d in mods and d != name and not d.startswith(name + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_walk_sees_a_cycle_hidden_in_a_function():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_vvkit_modules():
    graph = import_graph()
    assert "vvkit.train" in graph and "vvkit.difficulty" in graph["vvkit.train"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_train_is_imported_by_nothing_below_it():
    users = {m for m, deps in import_graph().items() if "vvkit.train" in deps}
    assert users <= {"vvkit.study", "vvkit.cli", "vvkit.run"}, users
