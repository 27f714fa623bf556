"""The environment files agree, and the notebooks follow the house rules (checked without running them)."""

import ast
import json
import re
import subprocess
import sys
import tomllib

import yaml

from .conftest import REPO_ROOT


def _norm(req: str) -> str:
    name, _, rest = req.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()) + "==" + rest.strip()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    wanted = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(map(_norm, pip_section)) == sorted(map(_norm, wanted))
    assert "python=3.11" in env["dependencies"]


def test_no_deps_packages_are_documented_for_conda_users():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    text = (REPO_ROOT / "environment.yml").read_text()
    for req in project["tool"]["divergen-repro"]["install-no-deps"]:
        assert f"pip install --no-deps {req}" in text


def test_every_dependency_is_pinned():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for req in project["project"]["dependencies"] + project["tool"]["divergen-repro"]["install-no-deps"]:
        assert "==" in req, req


def test_notebooks_have_one_parameters_cell_and_no_outputs():
    notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        assert "params_file" in "".join(tagged[0]["source"]), path.name
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), (
            f"notebooks/{path.name} holds outputs (saved from JupyterLab?); strip them with "
            f"`.venv/bin/nbstripout --keep-id notebooks/{path.name}`, or let `.venv/bin/pre-commit install` do it on "
            "every commit"
        )
        assert sum(c["cell_type"] == "markdown" for c in cells) >= len(code) // 2, f"{path.name}: explain the steps"


def test_every_params_file_belongs_to_a_notebook():
    stems = {p.stem for p in (REPO_ROOT / "notebooks").glob("*.ipynb")}
    for path in (REPO_ROOT / "params").glob("*/*.yaml"):
        assert path.name == "common.yaml" or path.stem in stems, path


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    command = re.search(r"`(\./run_all\.sh --test)`", readme).group(1)
    assert command in (REPO_ROOT / ".ci" / "run").read_text()


def test_code_is_ruff_clean():
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run(ruff + args, cwd=REPO_ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


SAFE_KEYWORDS = {"weights_only": True, "allow_unsafe": False}  # torch.load, open_clip; detectron2's merge_from_file
UNSAFE_CALLS = {("yaml", n) for n in ("load", "load_all", "full_load", "unsafe_load")} | {
    ("pickle", "load"),
    ("pickle", "loads"),
}


def test_weights_and_yaml_are_read_without_running_code():
    """Every ``torch.load`` passes ``weights_only=True``, every detectron2 config merge ``allow_unsafe=False``, YAML
    is read with ``yaml.safe_load`` only and nothing is unpickled directly (checked on the package's syntax trees)."""
    for path in sorted((REPO_ROOT / "divergen_lib").rglob("*.py")):
        where = path.relative_to(REPO_ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg in SAFE_KEYWORDS:
                safe = isinstance(node.value, ast.Constant) and node.value.value is SAFE_KEYWORDS[node.arg]
                assert safe, f"{where}:{node.lineno}: {node.arg} must be {SAFE_KEYWORDS[node.arg]}"
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            passed = {k.arg for k in node.keywords}
            assert (owner, node.func.attr) not in UNSAFE_CALLS, f"{where}:{node.lineno}: {owner}.{node.func.attr}"
            if (owner, node.func.attr) == ("torch", "load"):
                assert "weights_only" in passed, f"{where}:{node.lineno}: torch.load without weights_only"
            if node.func.attr == "merge_from_file":
                assert "allow_unsafe" in passed, f"{where}:{node.lineno}: merge_from_file without allow_unsafe"
