"""Notebooks saved with outputs (JupyterLab autosaves them) go back to what git tracks through the repository's
pre-commit hook (nbstripout)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def saved_with_outputs(source: Path, target: Path) -> Path:
    """``source`` as JupyterLab saves it after running: outputs, execution counts, timing metadata, widget state."""
    notebook = json.loads(source.read_text())
    for count, cell in enumerate((c for c in notebook["cells"] if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["toy world train: 100%\n"]}]
        cell["metadata"]["execution"] = {"iopub.execute_input": "2026-12-02T17:00:00.000Z"}
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    target.write_text(json.dumps(notebook, indent=1))
    return target


def hook_entry() -> list[str]:
    """The command of the nbstripout hook in ``.pre-commit-config.yaml``."""
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    (hook,) = [h for repo in config["repos"] for h in repo["hooks"] if h["id"] == "nbstripout"]
    return hook["entry"].split()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_hooks_command_turns_a_saved_notebook_back_into_the_tracked_file(source, tmp_path):
    program, *args = hook_entry()
    saved = saved_with_outputs(source, tmp_path / source.name)
    done = subprocess.run([sys.executable, "-m", program, *args, str(saved)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert saved.read_text() == source.read_text()  # cell ids kept: no diff beyond the outputs


@pytest.mark.slow
def test_pre_commit_strips_a_staged_notebook(tmp_path):
    if importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None:
        pytest.skip("pre-commit (dev extra) or git is not installed")
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".pre-commit-config.yaml", repo)
    source = REPO_ROOT / "notebooks" / "00_toyworld.ipynb"
    saved = saved_with_outputs(source, repo / "notebooks" / source.name)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
    }

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)

    run("git", "init", "-q")
    run("git", "add", ".")
    done = run(sys.executable, "-m", "pre_commit", "run", "--all-files")
    assert done.returncode == 1 and "files were modified by this hook" in done.stdout, done.stdout + done.stderr
    assert saved.read_text() == source.read_text()
    assert run(sys.executable, "-m", "pre_commit", "run", "--all-files").returncode == 0
