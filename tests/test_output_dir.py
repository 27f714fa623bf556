"""``--set output_dir=X`` moves a whole run: every path a params file names that an earlier stage writes follows it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from divergen_lib.config import load_config

from .conftest import REPO_ROOT, run_cli

PROFILES = ("smoke", "demo", "ablation", "paper")


def _values(value, where=""):
    """Every leaf value of a config (dataclasses, lists, dicts), with the key it sits at."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _values(getattr(value, f.name), f"{where}.{f.name}".lstrip("."))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _values(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _values(v, f"{where}[{i}]")
    else:
        yield where, value


@pytest.mark.parametrize("profile", PROFILES)
def test_no_path_of_a_profile_stays_behind_when_output_dir_moves(profile, tmp_path):
    moved = 0
    for path in sorted((REPO_ROOT / "params" / profile).glob("[0-9]*.yaml")):
        config = load_config(path, [f"output_dir={tmp_path}"])
        for key, value in _values(config):
            if isinstance(value, str | Path) and "outputs/" in str(value):
                raise AssertionError(f"{path.name}: {key} = {value} does not follow output_dir")
            moved += isinstance(value, str | Path) and str(value).startswith(str(tmp_path))
    assert moved, f"params/{profile}: no path under output_dir"


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.slow
def test_cli_stages_with_only_output_dir_write_there_and_nowhere_else(tmp_path):
    smoke = REPO_ROOT / "outputs" / "smoke"
    before = _snapshot(smoke)
    for stage, params in (("toyworld", "00_toyworld"), ("generate", "02_generation"), ("annotate", "03_annotation")):
        args = (stage, "--params", f"params/smoke/{params}.yaml", "--set", f"output_dir={tmp_path}")
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"-> {tmp_path}" in done.stdout
    assert (tmp_path / "toyworld" / "train.json").is_file()
    assert (tmp_path / "generation" / "manifest.jsonl").is_file()
    assert (tmp_path / "annotation" / "manifest.jsonl").is_file()
    assert _snapshot(smoke) == before
