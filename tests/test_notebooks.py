"""Notebooks executed headlessly through the same runner as run_all.sh."""

import json
import re
import shutil
import subprocess

import nbformat
import pytest

from divergen_lib.notebook_runner import NotebookFailure, plan, run_notebooks
from divergen_lib.progress import PROGRESS_ENV, TEXT

from .conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def sandbox(tmp_path):
    """A copy of notebooks/ and params/ whose outputs land in tmp_path."""
    for folder in ("notebooks", "params"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    return tmp_path


def test_plan_orders_notebooks_and_honours_only_and_from(tmp_path):
    root = sandbox(tmp_path)
    for name in ("98_b", "97_a"):
        shutil.copy(root / "notebooks" / "00_toyworld.ipynb", root / "notebooks" / f"{name}.ipynb")
        (root / "params" / "smoke" / f"{name}.yaml").write_text("")
    numbers = [j.number for j in plan("smoke", root=root)]
    assert numbers == sorted(numbers) and numbers[-2:] == ["97", "98"]
    assert [j.number for j in plan("smoke", only="97", root=root)] == ["97"]
    assert [j.number for j in plan("smoke", start="97", root=root)] == ["97", "98"]
    assert "00" not in [j.number for j in plan("paper", root=root)]  # the toy world is not part of paper
    with pytest.raises(SystemExit, match="no notebook 55 with a params file in params/smoke/"):
        plan("smoke", only="55", root=root)
    with pytest.raises(SystemExit, match="unknown profile 'nope'"):
        plan("nope", root=root)


def test_smoke_profile_runs_every_notebook_in_order_into_the_output_dir_it_is_given(tmp_path):
    """Only ``output_dir`` overridden: the whole run, inputs of every stage included, moves there."""
    root = sandbox(tmp_path / "repo")
    out = tmp_path / "elsewhere"
    run_notebooks("smoke", root=root, overrides=[f"output_dir={out}"])
    assert not (root / "outputs").exists()  # nothing written, so nothing could be read, under outputs/smoke
    executed = nbformat.read(out / "notebooks/00_toyworld.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "params/smoke/00_toyworld.yaml" in injected[0].source and f"output_dir={out}" in injected[0].source
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3
    assert (out / "toyworld/train.json").exists()
    assert (out / "generation/manifest.jsonl").exists()
    assert (out / "figures/generation_samples.png").exists()
    summary = json.loads((out / "ablation/summary.json").read_text())  # notebook 07, two workers
    assert [r["seeds"] for r in summary["rows"]] == [2, 2, 2] and len(summary["runs"]) == 6
    assert summary["rows"][1]["pool"] > 0 and summary["claims"][0]["claim"] == "generated data beats no generated data"
    assert (out / "figures/ablation.png").exists()
    for executed in sorted((out / "notebooks").glob("*.ipynb")):
        assert_reads_as_finished(nbformat.read(executed, as_version=4), executed.name)


PROGRESS_COUNT = re.compile(r"(\d+)/(\d+) \[")


def assert_reads_as_finished(notebook, name: str) -> None:
    """An executed copy as a reader sees it: no stderr (shown pink, read as an error), no warning, no saved
    progress widget (a frozen ``0%`` outside a live session), and every progress line at its final count."""
    for index, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        for output in cell.outputs:
            where = f"{name} code cell {index}"
            assert output.get("name") != "stderr", f"{where} writes to stderr: {output.get('text', '')[:300]}"
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), f"{where}: a widget"
            text = output.get("text", "") + output.get("data", {}).get("text/plain", "")
            assert "warning" not in text.lower(), f"{where} prints a warning: {text[:300]}"
            for done, total in PROGRESS_COUNT.findall(text):
                assert done == total, f"{where}: progress stopped at {done}/{total}"


def test_a_notebook_runs_where_jupyter_starts_its_kernel_with_its_relative_params(tmp_path, monkeypatch):
    """The route of a notebook opened in JupyterLab: the kernel starts in notebooks/, the parameters cell names
    ``params/...`` relative to the repository root, and nothing needs ``%cd ..``."""
    import papermill as pm

    monkeypatch.setenv(PROGRESS_ENV, TEXT)
    executed = tmp_path / "00_toyworld.ipynb"
    pm.execute_notebook(
        str(REPO_ROOT / "notebooks/00_toyworld.ipynb"),
        str(executed),
        parameters={"params_file": "params/smoke/00_toyworld.yaml", "overrides": [f"output_dir={tmp_path}"]},
        cwd=str(REPO_ROOT / "notebooks"),
        kernel_name="python3",
        progress_bar=False,
    )
    assert (tmp_path / "toyworld/world.json").is_file() and (tmp_path / "figures").is_dir()
    assert_reads_as_finished(nbformat.read(executed, as_version=4), executed.name)


def test_failure_names_notebook_cell_and_executed_copy(tmp_path):
    root = tmp_path
    (root / "params" / "smoke").mkdir(parents=True)
    (root / "params" / "smoke" / "01_broken.yaml").write_text("")
    (root / "params" / "smoke" / "common.yaml").write_text(f"profile: smoke\noutput_dir: {root}/outputs/smoke\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("params_file = ''\noverrides = []", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "01_broken.ipynb")
    with pytest.raises(NotebookFailure) as info:
        run_notebooks("smoke", root=root)
    message = str(info.value)
    executed = root / "outputs/smoke/notebooks/01_broken.ipynb"
    assert "notebooks/01_broken.ipynb" in message and "ValueError: boom" in message
    assert "cell 3" in message  # 0-based index after papermill's injected-parameters cell
    assert str(executed) in message and executed.exists()
    assert json.loads(executed.read_text())["cells"]


def test_run_all_rejects_unknown_options():
    done = subprocess.run([str(REPO_ROOT / "run_all.sh"), "--bogus"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option '--bogus'" in done.stderr
