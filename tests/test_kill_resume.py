"""A stage process killed with SIGKILL mid-run, or stopped by a full disk, then rerun, ends with exactly the files of
an uninterrupted run."""

from __future__ import annotations

import os
import re
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

    same_files(ref_out / stage.folder, stage_dir)  # same images, crops, pool files and shards; nothing partial left
    for manifest in stage_dir.rglob("*.jsonl"):
        ids = [row["id"] for row in read_manifest(manifest)]
        assert len(ids) == len(set(ids)), manifest


# the CLI with a disk that fills up: every fsync after the first N fails with ENOSPC, as on a full file system
DISK_FILLS_AFTER = """
import errno, os, sys
from divergen_lib.__main__ import main
real_fsync, budget = os.fsync, [int(sys.argv[1])]
def fsync(fd):
    budget[0] -= 1
    if budget[0] < 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fsync(fd)
os.fsync = fsync
sys.exit(main(sys.argv[2:]))
"""


def same_files(expected_dir: Path, got_dir: Path) -> None:
    expected, got = files_under(expected_dir), files_under(got_dir)
    assert not [name for name in got if Path(name).match(TEMP_PATTERN)]
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []  # byte-identical


@pytest.mark.parametrize("stage", STAGES, ids=[s.command for s in STAGES])
def test_a_full_disk_stops_the_stage_in_one_line_and_the_rerun_ends_as_an_uninterrupted_run(stage, reference, tmp_path):
    ref_out, overrides = reference
    out = tmp_path / "run"
    if stage.command == "filter":
        shutil.copytree(ref_out / "clip", out / "clip")
    cmd = cli(stage, out, overrides[stage.command])
    full = subprocess.run(
        [sys.executable, "-c", DISK_FILLS_AFTER, "6", *cmd[3:]], cwd=REPO_ROOT, capture_output=True, text=True
    )
    messages = re.findall(r"error: (.*)", full.stderr)  # after a progress bar's last state
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert len(messages) == 1 and messages[0].endswith(
        ": no space left on the device; free some and rerun (finished work is kept)"
    ), messages
    assert not (out / stage.folder / "manifest.jsonl").exists()  # stopped mid-stage, no item turned into an error

    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    same_files(ref_out / stage.folder, out / stage.folder)


def can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)]).returncode == 0


def test_generation_onto_a_really_full_file_system_then_freed(reference, tmp_path):
    """The same on a real file system that fills up (a tmpfs half the size of the images; root only)."""
    ref_out, overrides = reference
    out = tmp_path / "small_disk"
    if not can_mount_tmpfs(out):
        pytest.skip("mounting a tmpfs needs root and mount")
    try:
        size = sum(len(data) for data in files_under(ref_out / "generation").values()) // 2
        subprocess.run(["mount", "-o", f"remount,size={size}", str(out)], check=True)
        cmd = cli(STAGES[0], out, overrides["generate"])
        full = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
        assert re.findall(r"error: .*: no space left on the device", full.stderr), full.stderr[-3000:]
        subprocess.run(["mount", "-o", "remount,size=256m", str(out)], check=True)  # space freed
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        same_files(ref_out / "generation", out / "generation")
    finally:
        subprocess.run(["umount", "-l", str(out)])
