"""Generation, annotation and filtration under torchrun with 2 processes write the single-process run's files."""

import hashlib
import os
import subprocess
import sys

import pytest

from divergen_lib.formats import read_instance_pool

from .conftest import REPO_ROOT, smoke_generation_overrides

pytestmark = pytest.mark.slow

SMOKE = REPO_ROOT / "params" / "smoke"
SINGLE = [sys.executable]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
POOLS = ("filtration/pool.json", "filtration/pool_toy_flat.json", "filtration/pool_toy_soft.json")


def run_stages(launcher, out, world):
    """``generate``, ``annotate`` and ``filter`` on the smoke params through the CLI, each started by ``launcher``.

    One CPU thread per process in both runs (torchrun's default for several processes): the toy CLIP's training
    rounds differently with another thread count, as any float training does.
    """
    stages = [
        ("generate", "02_generation.yaml", smoke_generation_overrides(out, world)),
        ("annotate", "03_annotation.yaml", [f"output_dir={out}"]),
        (
            "filter",
            "04_filtration.yaml",
            [
                f"output_dir={out}",
                f"filtration.real.annotations={world.json_path('train')}",
                f"filtration.real.image_root={world.root}",
                "filtration.toy_clip.steps=40",  # half the smoke steps: the pool still keeps some, drops others
            ],
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage, params, overrides in stages:
        cmd = [*launcher, "-m", "divergen_lib", stage, "--params", str(SMOKE / params)]
        cmd += [arg for override in overrides for arg in ("--set", override)]
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(launcher[-3:])} {stage}: {done.stderr[-3000:]}"


def written_files(out):
    """sha256 of every file the stages wrote, by path relative to ``out``, except the per-rank shard manifests
    (named after the world size) and the toy CLIP's info json (it records the training time)."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and "/shards/" not in rel and not (rel.startswith("clip/") and rel.endswith(".json")):
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def test_two_processes_write_the_single_process_files_byte_for_byte(tmp_path, smoke_world):
    one, two = tmp_path / "one", tmp_path / "two"
    run_stages(SINGLE, one, smoke_world)
    run_stages(TORCHRUN, two, smoke_world)

    for stage, name in (("generation", "manifest.toy_flat"), ("annotation", "masks.fallback_grabcut")):
        shards = sorted(p.name for p in (two / stage / "shards").glob(f"{name}.rank*.jsonl"))
        assert shards == [f"{name}.rank000-of-002.jsonl", f"{name}.rank001-of-002.jsonl"]
    pool = read_instance_pool(two / POOLS[0])
    assert pool and all(not os.path.isabs(e.path) for entries in pool.values() for e in entries)

    single, scaled = written_files(one), written_files(two)
    for rel in ("generation/manifest.jsonl", "annotation/manifest.jsonl", "filtration/manifest.jsonl", *POOLS):
        assert rel in single
    assert any(rel.startswith("clip/") for rel in scaled)  # rank 0 trained the toy CLIP, rank 1 loaded it
    assert sorted(scaled) == sorted(single)
    assert [rel for rel in single if single[rel] != scaled[rel]] == []
