"""The data path walks forward: no import cycle among vvkit modules, counting imports inside functions (an AST walk
of every module, so a hidden `from vvkit.x import y` in a function body counts as much as one at the top)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vvkit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# docs/architecture.md's module table, bottom to top: a module imports only modules of its own row or rows before it.
LAYERS = [("fields", "io"), ("schema",), ("rundir",), ("decode", "video", "videowrite"), ("prompts",), ("synth",),
          ("processing", "model"), ("rollout",), ("vllm_engine",), ("rewards",), ("config",), ("budget",),
          ("grpo_config", "callbacks"), ("dist", "data", "shipped_start"), ("evaluate", "diagnostics", "benchmarks"),
          ("sft", "instruct", "difficulty"), ("grpo_trainer",), ("train",), ("viz", "analysis", "viewer"),
          ("study", "run", "cli", "lmms_eval", "lmms_tasks", "lmms_template", "lmms_entry")]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks (annotations only: never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def import_graph(type_checking: bool = True) -> dict[str, set[str]]:
    """{module: vvkit modules it imports anywhere in its body}; `from vvkit.pkg import name` counts the submodule
    `vvkit.pkg.name` when it exists, else the package. `type_checking=False` leaves out `if TYPE_CHECKING:` imports."""
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        skip = set() if type_checking else _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
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


def layer(module: str) -> int:
    top = module.split(".")[1]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md's module table")


def test_every_import_points_down_the_table():
    up = sorted(f"{m} -> {d}" for m, deps in import_graph(type_checking=False).items() if m != "vvkit"
                for d in deps if d != "vvkit" and layer(d) > layer(m))
    assert not up, up
