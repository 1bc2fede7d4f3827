"""Rules that keep the codebase livable (STYLE.md): pure logic imports no Ray/torch, the library
never imports jobs, and the cluster file passes the Ray launcher's own schema check."""

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


def test_cluster_yaml_passes_the_launchers_schema():
    yaml = pytest.importorskip("yaml")
    util = pytest.importorskip("ray.autoscaler._private.util")
    config = util.prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    util.validate_config(config)  # raises on a schema violation
    assert config["head_node_type"] in config["available_node_types"]
    assert any("gpu" in name for name in config["available_node_types"])

