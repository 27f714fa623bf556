"""A stage process killed with SIGKILL mid-run, then rerun, ends with exactly the files of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from divergen_lib.annotation import stage as annotation
from divergen_lib.config import Config, load_config
from divergen_lib.distributed import shard_path
from divergen_lib.filtration import stage as filtration
from divergen_lib.formats import read_manifest
from divergen_lib.formats.atomic import TEMP_PATTERN, TEMP_SUFFIX
from divergen_lib.generation import stage as generation

from .conftest import REPO_ROOT
from .test_generation import toy_models

pytestmark = pytest.mark.slow
SMOKE = REPO_ROOT / "params" / "smoke"


@dataclass(frozen=True)
class Stage:
    """A stage as the CLI runs it: ``folder`` under the output dir; killed once map ``shard`` has a row."""

    command: str
    params: Path
    run: Callable[[Config], object]
    folder: str
    shard: str


STAGES = [
    Stage("generate", SMOKE / "02_generation.yaml", generation.run, "generation", "manifest.toy_flat"),
    Stage("annotate", SMOKE / "03_annotation.yaml", annotation.run, "annotation", "masks.fallback_grabcut"),
    Stage("filter", SMOKE / "04_filtration.yaml", filtration.run, "filtration", "scores"),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, smoke_world):
    """Uninterrupted in-process runs of the three stages, chained in one output folder, and each stage's
    ``--set`` values (inputs taken from this chain, so every killed stage starts from the same inputs)."""
    out = tmp_path_factory.mktemp("reference")
    world = smoke_world.root
    overrides = {
        "generate": [f"generation.categories.toyworld={world}", toy_models(smoke_world)],
        "annotate": [f"annotation.generation_dir={out / 'generation'}"],
        "filter": [
            f"filtration.real.annotations={smoke_world.json_path('train')}",
            f"filtration.real.image_root={world}",
            f"filtration.generation_dir={out / 'generation'}",
            f"filtration.annotation_dir={out / 'annotation'}",
            "filtration.toy_clip.steps=4",  # the CLIP only has to be the same in both runs, not good
            "filtration.batch_size=4",
        ],
    }
    for stage in STAGES:
        stage.run(load_config(stage.params, [f"output_dir={out}", *overrides[stage.command]]))
    return out, overrides


def cli(stage: Stage, out: Path, overrides: list[str]) -> list[str]:
    sets = [arg for value in [f"output_dir={out}", *overrides] for arg in ("--set", value)]
    return [sys.executable, "-m", "divergen_lib", stage.command, "--params", str(stage.params), *sets]


def kill_at_first_row(cmd: list[str], shard: Path, log: Path, timeout: float = 120.0) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``shard`` holds one finished row; fail if it ends before that."""
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + timeout
    try:
        while not (shard.is_file() and b"\n" in shard.read_bytes()):
            assert proc.poll() is None, f"the stage ended (exit {proc.returncode}) before it could be killed"
            assert time.monotonic() < deadline, f"no row in {shard} after {timeout} s"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stage", STAGES, ids=[s.command for s in STAGES])
def test_killed_stage_reruns_to_the_uninterrupted_result(stage, reference, tmp_path):
    ref_out, overrides = reference
    out = tmp_path / "run"
    if stage.command == "filter":  # the toy CLIP cache of the reference run: the same weights, no retraining
        shutil.copytree(ref_out / "clip", out / "clip")
    cmd = cli(stage, out, overrides[stage.command])
    stage_dir = out / stage.folder
    shard = shard_path(stage_dir, stage.shard, 0, 1)
    kill_at_first_row(cmd, shard, tmp_path / "killed.log")
    assert not (stage_dir / "manifest.jsonl").exists()  # killed mid-run, not after it
    # what a kill during an atomic write leaves: a hidden temp file beside the file being written
    (shard.parent / f".{shard.name}.killed{TEMP_SUFFIX}").write_text('{"id": "half')

    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    expected, got = files_under(ref_out / stage.folder), files_under(stage_dir)
    assert not [name for name in got if Path(name).match(TEMP_PATTERN)]
    assert sorted(got) == sorted(expected)  # same images, crops, pool files and shards; nothing partial left
    assert [name for name in expected if got[name] != expected[name]] == []  # byte-identical
    for manifest in stage_dir.rglob("*.jsonl"):
        ids = [row["id"] for row in read_manifest(manifest)]
        assert len(ids) == len(set(ids)), manifest
