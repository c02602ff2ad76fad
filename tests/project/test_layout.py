"""The package's shape: layers as subpackages, no import cycles, short modules, the public names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "collapse_doctor"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports() -> dict[str, set[str]]:
    """Each module's imports of the package at module level (function bodies and TYPE_CHECKING blocks
    excluded: an import inside a function is allowed for the optional extras)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collapse_doctor"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges.add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("collapse_doctor")}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_no_import_cycles_among_module_level_imports():
    graph = module_level_imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_at_most_ten_modules_at_the_top_and_none_over_500_lines():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, long


def test_the_verdict_layer_does_not_import_torch_at_module_level():
    """judge/verdict.py, flags.py, scan.py and measures.py are pure: the CLI and scan load without torch."""
    graph = module_level_imports()
    for name in (
        "collapse_doctor.judge.verdict",
        "collapse_doctor.judge.flags",
        "collapse_doctor.judge.scan",
        "collapse_doctor.judge.measures",
    ):
        source = (PACKAGE.parent / (name.replace(".", "/") + ".py")).read_text()
        assert "import torch" not in source, name
        assert all(not dep.startswith(("collapse_doctor.model", "collapse_doctor.train")) for dep in graph[name]), name


@pytest.mark.parametrize(
    "module, name",
    [
        ("collapse_doctor", "CollapseMonitor"),
        ("collapse_doctor", "CollapseDetected"),
        ("collapse_doctor", "VerdictConfig"),
        ("collapse_doctor", "__version__"),
        ("collapse_doctor.cli", "main"),
        ("collapse_doctor.cli", "app"),
        ("collapse_doctor.config", "load_config"),
        ("collapse_doctor.config", "Config"),
    ],
)
def test_every_documented_name_imports(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_the_lightning_callback_keeps_its_documented_path():
    pytest.importorskip("lightning")
    from collapse_doctor.judge.lightning import CollapseCallback as inner
    from collapse_doctor.lightning import CollapseCallback

    assert CollapseCallback is inner


LAYERS = {
    "errors": 0,
    "encoding": 0,
    "config": 0,
    "judge": 1,
    "model": 1,
    "data": 1,
    "train": 3,
    "experiments": 4,
    "sweeps": 5,
    "cli": 6,
}


def test_no_layer_imports_a_layer_above_it():
    """errors, encoding, config < judge, model, data < train < experiments < sweeps < cli."""
    upward = []
    for module, deps in module_level_imports().items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue  # the package root and lightning.py re-export from below
        for dep in deps:
            dep_parts = dep.split(".")
            if len(dep_parts) > 1 and dep_parts[1] in LAYERS and LAYERS[dep_parts[1]] > LAYERS[parts[1]]:
                upward.append((module, dep))
    assert not upward, upward


def test_every_folder_of_the_package_says_what_it_is():
    """Issue 23, item 5: a docstring in every __init__.py, and the grid encoding defined once."""
    import ast

    package = Path(__file__).resolve().parents[2] / "collapse_doctor"
    silent = [
        str(init.relative_to(package))
        for init in package.rglob("__init__.py")
        if not ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    ]
    assert not silent, silent
    definitions = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(("PAD =", "IGNORE_INDEX ="))
    ]
    assert definitions == ["encoding.py", "encoding.py"], definitions


def test_no_module_imports_another_modules_private_name():
    """Issue 23, item 8 (this part): a name shared across modules is public; `_name` stays in its module."""
    import ast

    package = Path(__file__).resolve().parents[2] / "collapse_doctor"
    private = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("collapse_doctor"):
                private += [
                    f"{path.relative_to(package)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not private, private


def test_no_function_in_the_sweeps_or_experiments_layers_is_over_100_lines():
    """Issue 23, item 4: a function that long does several things; its phases get names of their own."""
    long = []
    for layer in ("sweeps", "experiments"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 100:
                        long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_experiment_imports_a_sibling_experiments_helpers():
    """Issue 23, item 1: the set-up every experiment shares lives in run_setup.py (and the few modules of
    shared parts: identity, presets, regimes, warm_start, grad_compare, measure); a recipe never imports
    another recipe."""
    recipes = {"probe", "seed_batch", "noise", "gradcheck", "gradient_noise", "inspection"}
    crossing = []
    for path in (PACKAGE / "experiments").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("collapse_doctor.experiments."):
                imported = node.module.rsplit(".", 1)[1]
                if imported in recipes and imported != path.stem:
                    crossing.append(f"{path.name} imports {node.module}")
    assert not crossing, crossing
