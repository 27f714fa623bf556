"""The import structure of divergen_lib, read from the source: stages, core modules and config modules keep to
their layers, and nothing imports in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

from divergen_lib.stages import SECTIONS, STAGES, stage_of_notebook, stage_of_section

from .conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "divergen_lib"
STAGE_PACKAGES = {STAGES.get(verb).section for verb in STAGES}
# modules every stage may use; they know no stage
CORE = {
    "categories",
    "clip_choice",
    "config",
    "crops",
    "distributed",
    "errors",
    "folder_lock",
    "formats",
    "paste",
    "preflight",
    "prompts",
    "registry",
    "stages",
    "viz",
    "wordnet",
}
# modules that build config dataclasses: loading params through them must not import torch
CONFIG_MODULES = {
    "divergen_lib.config",
    "divergen_lib.stages",
    *(STAGES.get(v).config.partition(":")[0] for v in STAGES),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.Module, top_level_only: bool) -> list[ast.AST]:
    """The nodes that can run: not under ``if TYPE_CHECKING``; with ``top_level_only``, only those that run when the
    module is imported (not inside functions)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
    return out


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return {target} | {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES}


@cache
def imports(module: str, top_level_only: bool = False) -> frozenset[str]:
    """The divergen_lib modules (and the first component of outside packages) ``module`` imports when it runs
    (imports for type checking only left out); with ``top_level_only``, those imported as soon as ``module`` is."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = _runtime_nodes(tree, top_level_only)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _targets(node, package)
    return frozenset(_known(name) for name in found)


def _known(name: str) -> str:
    """A divergen_lib module name as it is in MODULES (a name imported from a module is the module); an outside
    package by its first component."""
    if not name.startswith("divergen_lib"):
        return name.split(".")[0]
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def layer(module: str) -> str:
    """``core``, the stage package a module belongs to, or ``entry`` (CLI, notebook runner, other shared code)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in CORE:
        return "core"
    if len(parts) > 1 and parts[1] in STAGE_PACKAGES:
        return parts[1]
    return "other"


def test_no_stage_imports_another_stages_orchestration():
    bad = [
        f"{m} imports {t}"
        for m in MODULES
        for t in imports(m)
        if t.startswith("divergen_lib.") and t.endswith(".stage") and layer(t) != layer(m)
    ]
    assert not bad, "a stage's stage.py is its orchestration; import its library modules instead:\n" + "\n".join(bad)


def test_core_modules_import_no_stage():
    bad = [
        f"{m} imports {t}"
        for m in MODULES
        if layer(m) == "core"
        for t in imports(m)
        if t.startswith("divergen_lib.") and layer(t) in STAGE_PACKAGES
    ]
    assert not bad, "core modules must not know the stages:\n" + "\n".join(bad)


def _module_level_closure(start: str) -> dict[str, str]:
    """Every module imported at module level from ``start`` on, each with the module that imported it first."""
    seen = {start: ""}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in imports(module, top_level_only=True) | _parents(module):
            if target not in seen:
                seen[target] = module
                if target in MODULES:
                    todo.append(target)
    return seen


def _parents(module: str) -> set[str]:
    """The packages whose ``__init__`` runs before ``module`` does."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_config_modules_import_no_torch():
    for module in sorted(CONFIG_MODULES):
        closure = _module_level_closure(module)
        for heavy in ("torch", "torchvision", "open_clip", "diffusers", "transformers", "detectron2"):
            if heavy in closure:
                chain, at = [heavy], heavy
                while closure[at]:
                    at = closure[at]
                    chain.append(at)
                raise AssertionError(f"{module} imports {heavy}: {' <- '.join(chain)}")


def test_loading_every_params_file_imports_no_torch():
    code = (
        "import sys, glob\n"
        "from divergen_lib.config import load_config\n"
        "for p in sorted(glob.glob('params/*/*.yaml')):\n"
        "    if not p.endswith('common.yaml'): load_config(p)\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'diffusers', 'detectron2') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _is_package_init(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def test_no_import_cycle_between_modules():
    # a package's __init__ re-exporting its submodules is not a cycle of the code
    graph = {
        m: {t for t in imports(m) if t in MODULES and not _is_package_init(t) and t != m}
        for m in MODULES
        if not _is_package_init(m)
    }
    assert not _cycles(graph)


def test_no_import_cycle_between_packages():
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for m in MODULES:
        targets = {package(t) for t in imports(m) if t in MODULES}
        graph.setdefault(package(m), set()).update(targets - {package(m)})
    assert not _cycles(graph)


def test_every_stage_record_resolves():
    from divergen_lib.registry import load_target

    for verb in STAGES:
        stage = STAGES.get(verb)
        for target in (stage.config, stage.run, stage.figures, stage.layout, stage.inputs):
            if target is not None:
                assert callable(load_target(target)), f"{verb}: {target}"
        assert stage.section in SECTIONS and (REPO_ROOT / "notebooks" / f"{stage.notebook}.ipynb").is_file()
        assert stage_of_notebook(stage.notebook) is stage and stage_of_section(stage.section) is stage


def test_the_layering_test_sees_a_violation(tmp_path, monkeypatch):
    """The checks above would fail if a forbidden import came back (checked on a planted module)."""
    planted = PACKAGE / "generation" / "_planted_for_test.py"
    planted.write_text("from ..filtration.stage import run\nimport torch\n")
    try:
        name = module_name(planted)
        MODULES[name] = planted
        imports.cache_clear()
        assert "divergen_lib.filtration.stage" in imports(name)
        assert "torch" in _module_level_closure(name)
        assert layer(name) == "generation" != layer("divergen_lib.filtration.stage")
        assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    finally:
        planted.unlink()
        MODULES.pop(module_name(planted), None)
        imports.cache_clear()


def _engine_branches(module: str) -> list[str]:
    """Comparisons with an engine's name in ``module`` (``engine == "detectron2"`` and the like)."""
    from divergen_lib.training.engines import ENGINES

    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in ENGINES for o in operands):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    return found


def _in_engine_package(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 3 and parts[1] == "training" and parts[2].endswith("_engine")


def test_no_engine_branch_outside_the_engines():
    bad = [b for m in MODULES if not _in_engine_package(m) for b in _engine_branches(m)]
    assert not bad, "ask the engine (training.engines.ENGINES) instead of comparing its name:\n" + "\n".join(bad)


def test_the_engine_branch_check_sees_one(tmp_path):
    planted = PACKAGE / "evaluation" / "_planted_branch_for_test.py"
    planted.write_text('def f(cfg):\n    return cfg.engine == "detectron2"\n')
    try:
        MODULES[module_name(planted)] = planted
        assert _engine_branches(module_name(planted)) and not _in_engine_package(module_name(planted))
        assert _in_engine_package("divergen_lib.training.detectron2_engine.trainer")
    finally:
        planted.unlink()
        MODULES.pop(module_name(planted), None)
