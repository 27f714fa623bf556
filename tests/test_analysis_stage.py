import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from divergen_lib.analysis import embeddings
from divergen_lib.analysis import stage as analysis
from divergen_lib.config import load_config
from divergen_lib.distributed import DistInfo
from divergen_lib.formats import read_json

from .conftest import REPO_ROOT

SMOKE = REPO_ROOT / "params" / "smoke" / "01_distribution_analysis.yaml"


def smoke_overrides(out, world):
    """``--set`` values of the smoke analysis on ``world`` into ``out``, with two small generated sets."""
    root = world.root
    sets = [
        f"analysis.{k}={v}"
        for k, v in (
            ("train_annotations", root / "train.json"),
            ("val_annotations", root / "val.json"),
            ("image_root", root),
        )
    ]
    models = f"[{{name: toy_flat, backend: toy, options: {{world: {root}, style: flat, size: 64}}}}]"
    generated = (
        f"analysis.generated=[{{name: template, models: {models}, images_per_category: 2}},"
        f" {{name: attributes, models: {models}, prompts: {{template: always, attributes: 3}},"
        " images_per_category: 2}]"
    )
    return [f"output_dir={out}", f"analysis.categories.toyworld={root}", *sets, generated]


def smoke_config(out, world):
    return load_config(SMOKE, smoke_overrides(out, world))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, smoke_world):
    out = tmp_path_factory.mktemp("analysis")
    config = smoke_config(out, smoke_world)
    return analysis.run(config), config, out


def test_every_set_is_compared_with_real_val_overall_and_on_rare_categories(analysed):
    run, _, out = analysed
    assert set(run.sets) == {"real train", "real val", "template", "attributes"}
    assert {(r["set"], r["categories"]) for r in run.table} >= {("real train", "all"), ("template", "all")}
    assert read_json(out / "analysis" / "metrics.json") == run.table
    train = next(r for r in run.table if r["set"] == "real train" and r["categories"] == "all")
    generated = next(r for r in run.table if r["set"] == "template" and r["categories"] == "all")
    assert train["coverage"] > generated["coverage"]  # real train is closer to real val than toy generations
    assert train["frechet"] < generated["frechet"]


def test_embeddings_are_cached_and_reused(analysed, monkeypatch):
    run, config, out = analysed
    files = sorted((out / "analysis" / "embeddings").glob("*.npz"))
    assert len(files) == 4
    stamps = [f.stat().st_mtime_ns for f in files]

    def no_embedding(*args, **kwargs):
        raise AssertionError("embeddings were recomputed")

    monkeypatch.setattr(embeddings, "annotation_crops", no_embedding)
    monkeypatch.setattr(embeddings, "build_generator", no_embedding)
    again = analysis.run(config)
    assert again.table == run.table
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_figures_are_written(analysed):
    run, config, _ = analysed
    paths = analysis.save_figures(run, config)
    assert paths["map"].stat().st_size > 1000


def test_conclusions_are_read_off_the_numbers():
    table = [
        {
            "set": "real train",
            "categories": "all",
            "coverage": 0.9,
            "recall": 0.9,
            "precision": 0.9,
            "frechet": 0.1,
            "mmd": 0.01,
        },
        {
            "set": "plain",
            "categories": "all",
            "coverage": 0.2,
            "recall": 0.3,
            "precision": 0.5,
            "frechet": 1.0,
            "mmd": 0.2,
        },
        {
            "set": "diverse",
            "categories": "all",
            "coverage": 0.35,
            "recall": 0.6,
            "precision": 0.4,
            "frechet": 0.8,
            "mmd": 0.1,
        },
    ]
    text = "\n".join(analysis.conclusions(table))
    assert "diverse vs plain: raises coverage of real val by 15% (20% -> 35%)" in text
    assert "covers less of real val than real train (35% vs 90%)" in text
    table[2]["coverage"] = 0.1
    assert "lowers coverage of real val by 10%" in "\n".join(analysis.conclusions(table))


@pytest.mark.slow
def test_two_processes_embed_what_one_process_embeds(tmp_path, smoke_world, smoke_toy_clip):
    """``analyze`` under torchrun: each rank embeds its block of every set, rank 0 merges them in order."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launchers = {"one": [sys.executable], "two": [sys.executable, "-m", "torch.distributed.run", "--standalone"]}
    launchers["two"] += ["--nproc_per_node", "2"]
    for name, launcher in launchers.items():
        out = tmp_path / name
        shutil.copytree(smoke_toy_clip, out / "clip")
        sets = [arg for override in smoke_overrides(out, smoke_world) for arg in ("--set", override)]
        cmd = [*launcher, "-m", "divergen_lib", "analyze", "--params", str(SMOKE), *sets]
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    files = {}  # by set, without the settings digest (it holds the output folder's CLIP cache path)
    for name in launchers:
        found = sorted((tmp_path / name / "analysis" / "embeddings").glob("*.npz"))
        files[name] = {f.name.rsplit("-", 1)[0]: f for f in found}
        assert len(found) == len(files[name]) == 4  # the merged files only, no rank parts
    assert sorted(files["one"]) == sorted(files["two"])
    for key, one in files["one"].items():
        with np.load(one) as a, np.load(files["two"][key]) as b:
            assert np.array_equal(a["category_ids"], b["category_ids"]) and np.array_equal(a["index"], b["index"])
            assert a["embeddings"].shape == b["embeddings"].shape
            assert np.allclose(a["embeddings"], b["embeddings"], atol=1e-5)  # another batch split, same numbers
    metrics = [json.loads((tmp_path / name / "analysis" / "metrics.json").read_text()) for name in launchers]
    assert [r["set"] for r in metrics[0]] == [r["set"] for r in metrics[1]]
    for a, b in zip(*metrics, strict=True):
        assert a["coverage"] == pytest.approx(b["coverage"], abs=0.02) and a["frechet"] == pytest.approx(
            b["frechet"], rel=1e-3
        )


def test_a_rank_block_is_contiguous_and_the_blocks_cover_every_item():
    blocks = [embeddings.rank_block(10, rank, 3) for rank in range(3)]
    assert [list(b) for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert [len(embeddings.rank_block(2, rank, 4)) for rank in range(4)] == [0, 1, 0, 1]


def test_rank_parts_are_merged_in_item_order_and_a_finished_part_is_not_redone(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "dist_info", lambda: DistInfo(rank=0, world_size=2))
    path = tmp_path / "set-key.npz"
    rows = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)

    def part(block):
        kept = [i for i in block if i != 4]  # item 4 gives no row (say, an unreadable image)
        return rows[kept], np.asarray(kept) + 100, np.asarray(kept)

    embeddings._save(tmp_path / "set-key.rank001-of-002.npz", part(range(3, 6)))  # rank 1 finished earlier
    made = []
    merged = embeddings.sharded_embeddings(path, 6, lambda block: made.append(block) or part(block))
    assert made == [range(0, 3)]
    assert merged[1].tolist() == [100, 101, 102, 103, 105] and np.array_equal(merged[0][:, 0], [0, 1, 2, 3, 5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set-key.npz"]  # the parts are gone once merged
    assert np.array_equal(embeddings.cached(path)[1], merged[1])
    for rank in (0, 1):
        embeddings._save(tmp_path / f"again.rank{rank:03d}-of-002.npz", part(embeddings.rank_block(6, rank, 2)))
    again = embeddings.sharded_embeddings(tmp_path / "again.npz", 6, lambda block: pytest.fail("part redone"))
    assert again[1].tolist() == merged[1].tolist()
