import shutil
from pathlib import Path

import numpy as np
import pytest

from divergen_lib.annotation import stage as annotation
from divergen_lib.config import ConfigError, load_config
from divergen_lib.filtration import stage as filtration
from divergen_lib.formats import read_image, read_instance_pool, resolve_pool_paths

from .conftest import REPO_ROOT, interrupted_after, run_cli

SMOKE = REPO_ROOT / "params" / "smoke" / "04_filtration.yaml"


@pytest.fixture(scope="module")
def annotated(tmp_path_factory, smoke_generation):
    out = tmp_path_factory.mktemp("annotated")
    overrides = [f"output_dir={out}", f"annotation.generation_dir={smoke_generation.out_dir}"]
    return annotation.run(load_config(REPO_ROOT / "params" / "smoke" / "03_annotation.yaml", overrides))


def config(out, world, annotated, *extra, clip_cache=None):
    """Smoke filtration params over the annotated smoke generations; a trained toy CLIP cache is reused."""
    if clip_cache is not None and not (out / "clip").exists():
        shutil.copytree(clip_cache, out / "clip")
    return load_config(
        SMOKE,
        [
            f"output_dir={out}",
            f"filtration.real.annotations={world.json_path('train')}",
            f"filtration.real.image_root={world.root}",
            f"filtration.annotation_dir={annotated.out_dir}",
            f"filtration.generation_dir={annotated.generation_dir}",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, smoke_world, annotated, smoke_toy_clip):
    out = tmp_path_factory.mktemp("filtered")
    return filtration.run(config(out, smoke_world, annotated, clip_cache=smoke_toy_clip)), out


def test_every_annotated_instance_gets_scores_and_a_decision(filtered, annotated):
    run, _ = filtered
    ok = [r for r in annotated.rows if r["status"] == "ok"]
    assert [r["annotation_id"] for r in run.rows] == [r["id"] for r in ok]
    for row in run.rows:
        assert row["keep"] == (row["reason"] is None)
    assert 0 < sum(r["keep"] for r in run.rows) < len(run.rows)


def test_pool_round_trips_and_holds_tight_rgba_crops(filtered):
    run, _ = filtered
    pool = read_instance_pool(run.pools["merged"])
    assert pool and all(e.preprocessed and e.mask_path is None for v in pool.values() for e in v)
    assert not any(Path(e.path).is_absolute() for v in pool.values() for e in v)  # portable with its folder
    per_model = [read_instance_pool(p) for name, p in run.pools.items() if name != "merged"]
    assert sum(len(v) for p in per_model for v in p.values()) == sum(len(v) for v in pool.values())
    assert sum(len(v) for v in pool.values()) == sum(r["keep"] for r in run.rows)
    for entries in resolve_pool_paths(pool, run.pools["merged"].parent).values():
        crop = read_image(entries[0].path, "RGBA")
        alpha = crop[..., 3]
        assert set(np.unique(alpha)) <= {0, 255}
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()  # tight box


def test_extra_categories_survive_under_the_default_policy(filtered):
    run, _ = filtered
    extra_ids = {c["id"] for c in run.categories if c.get("extra")}
    assert extra_ids
    extra_rows = [r for r in run.rows if r["category_id"] in extra_ids]
    assert extra_rows and all(r["inter_similarity"] is None and r["clip_score"] is not None for r in extra_rows)
    assert extra_ids <= set(filtration.pool_sizes(run))


def test_dropping_categories_without_real_instances_is_explicit(tmp_path, smoke_world, annotated, filtered):
    run, out = filtered
    strict = filtration.run(
        config(
            tmp_path,
            smoke_world,
            annotated,
            "filtration.clip_score.apply_to=none",
            "filtration.inter_similarity.without_real=drop",
            clip_cache=out / "clip",
        )
    )
    extra_ids = {c["id"] for c in strict.categories if c.get("extra")}
    dropped = [r for r in strict.rows if r["category_id"] in extra_ids]
    assert dropped and all(r["reason"] == "no real instances to compare with" for r in dropped)
    assert not extra_ids & set(filtration.pool_sizes(strict))


def test_stage_is_deterministic_and_resumes(tmp_path, smoke_world, annotated, filtered):
    run, out = filtered
    with interrupted_after(filtration._Scorer, 1):
        filtration.run(config(tmp_path, smoke_world, annotated, "filtration.batch_size=4", clip_cache=out / "clip"))
    resumed = filtration.run(config(tmp_path, smoke_world, annotated, "filtration.batch_size=4"))
    assert resumed.manifest_path.read_bytes() == run.manifest_path.read_bytes()


def test_corrupt_generated_image_is_an_error_row_not_a_crash(tmp_path, smoke_world, annotated, filtered):
    run, out = filtered
    gen_dir = tmp_path / "generation"
    shutil.copytree(annotated.generation_dir, gen_dir)
    victim = next(r for r in annotated.rows if r["status"] == "ok")
    (gen_dir / victim["path"]).write_bytes(b"broken")
    broken = filtration.run(
        config(
            tmp_path / "out", smoke_world, annotated, f"filtration.generation_dir={gen_dir}", clip_cache=out / "clip"
        )
    )
    row = next(r for r in broken.rows if r["annotation_id"] == victim["id"])
    assert row["status"] == "error" and "unreadable image" in row["reason"] and not row["keep"]
    assert len(broken.rows) == len(run.rows)


def test_missing_inputs_are_one_clear_error(tmp_path, smoke_world, annotated):
    with pytest.raises(ConfigError, match="missing .run the generation and annotation stages first"):
        filtration.run(config(tmp_path, smoke_world, annotated, f"filtration.annotation_dir={tmp_path / 'none'}"))
    done = run_cli("filter", "--params", str(SMOKE), "--set", f"output_dir={tmp_path}")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
