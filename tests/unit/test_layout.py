"""Rules that keep the codebase livable (docs/architecture.md §4): pure logic imports no Ray/torch, the library
never imports jobs, no module or package imports itself in a cycle, and the cluster file passes
the Ray launcher's own schema check."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["glore_ray/tasks", "glore_ray/labeling", "glore_ray/decide", "glore_ray/metrics.py"]
HEAVY = ("ray", "torch", "deepspeed", "vllm", "transformers")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(rel: str) -> list[Path]:
    path = ROOT / rel
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("rel", PURE)
def test_pure_paper_logic_imports_no_ray_or_torch(rel):
    for path in python_files(rel):
        heavy = {m for m in imported_modules(path) if m.split(".")[0] in HEAVY}
        assert not heavy, f"{path.relative_to(ROOT)} imports {sorted(heavy)}"


def test_library_never_imports_jobs():
    for path in python_files("glore_ray"):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "jobs"}, path


def library_imports() -> dict[str, set[str]]:
    """Every ``glore_ray`` module -> the ``glore_ray`` modules it imports, at module level or
    inside a function (a deferred import still ties the two modules together)."""
    files = {}
    for path in python_files("glore_ray"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each a cycle's members."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while not members or members[-1] != v:
                members.append(stack.pop())
                on_stack.discard(members[-1])
            if len(members) > 1:
                found.append(sorted(members))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules_or_packages():
    graph = library_imports()
    assert not cycles(graph), f"modules import each other in a cycle: {cycles(graph)}"
    top = lambda name: ".".join(name.split(".")[:2])  # noqa: E731 (glore_ray.<package or module>)
    packages = {}
    for name, targets in graph.items():
        packages.setdefault(top(name), set()).update(top(t) for t in targets if top(t) != top(name))
    assert not cycles(packages), f"packages import each other in a cycle: {cycles(packages)}"


def test_cluster_yaml_passes_the_launchers_schema():
    yaml = pytest.importorskip("yaml")
    util = pytest.importorskip("ray.autoscaler._private.util")
    config = util.prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    util.validate_config(config)  # raises on a schema violation
    assert config["head_node_type"] in config["available_node_types"]
    assert any("gpu" in name for name in config["available_node_types"])

