"""X-Paste's pipeline as a profile: ``params/xpaste/`` (real data and weights) loads with X-Paste's settings, and its
toy version ``params/xpaste-toy/`` runs generate → annotate (two segmenters) → max-CLIP → filter → pool, each
generated image entering the pool at most once, within its quotas."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from divergen_lib.annotation import stage as annotation
from divergen_lib.config import load_config
from divergen_lib.filtration import stage as filtration
from divergen_lib.filtration.composition import NOT_DRAWN
from divergen_lib.formats import read_instance_pool, resolve_pool_paths
from divergen_lib.generation import stage as generation
from divergen_lib.notebook_runner import plan

from .conftest import REPO_ROOT

XPASTE, TOY = REPO_ROOT / "params" / "xpaste", REPO_ROOT / "params" / "xpaste-toy"


def test_the_xpaste_profile_holds_xpastes_settings():
    gen = load_config(XPASTE / "02_generation.yaml").section("generation")
    assert [m.backend for m in gen.models] == ["stable_diffusion"] and not gen.categories.imagenet_extras
    assert gen.prompts.template_text == "a photo of a single {name}" and gen.prompts.suffix == ""
    assert [e.name for e in gen.external] == ["web"]
    ann = load_config(XPASTE / "03_annotation.yaml").section("annotation")
    assert [m.method for m in ann.methods] == ["clipseg", "salient_onnx"]
    filt = load_config(XPASTE / "04_filtration.yaml").section("filtration")
    cs = filt.clip_score
    assert filt.fusion == "max_clip" and filt.methods == [m.name for m in ann.methods]
    assert (cs.apply_to, cs.min_clip, cs.tolerance, cs.min_area, cs.max_area) == ("all", 21, 1, 0.05, 0.95)
    assert cs.template == "a photo of {name}" and not filt.inter_similarity.enabled
    assert [(q.max_instances, q.kind) for q in filt.pool.quotas] == [(150_000, "generated"), (150_000, "external")]
    training = load_config(XPASTE / "05_training.yaml").section("training")
    assert str(training.detectron2.config_file).endswith("XPaste/configs/Xpaste_swinL.yaml")
    assert training.area_prior is not None and training.area_prior.name == "area_mean_std2.json"
    assert [j.number for j in plan("xpaste")] == ["02", "03", "04", "05", "06"]
    assert [j.number for j in plan("xpaste-toy")] == ["00", "02", "03", "04"]


@pytest.fixture(scope="module")
def xpaste_toy(tmp_path_factory, smoke_world, smoke_toy_clip):
    """The xpaste-toy profile's stages on the smoke toy world (its 00 params are the smoke world's, and its toy CLIP
    the smoke filtration's: found in the cache, not trained again)."""
    out = tmp_path_factory.mktemp("xpaste-toy")
    os.symlink(smoke_world.root, out / "toyworld")
    shutil.copytree(smoke_toy_clip, out / "clip")
    runs = {}
    for stage, name in ((generation, "02_generation"), (annotation, "03_annotation"), (filtration, "04_filtration")):
        runs[name] = stage.run(load_config(TOY / f"{name}.yaml", [f"output_dir={out}"]))
    assert sorted(p.name for p in (out / "clip").iterdir()) == sorted(p.name for p in smoke_toy_clip.iterdir())
    return runs


def test_xpaste_toy_pools_each_generated_image_at_most_once_within_its_quotas(xpaste_toy):
    generated = [r for r in xpaste_toy["02_generation"].rows if r["status"] == "ok"]
    masks = [r for r in xpaste_toy["03_annotation"].rows if r["status"] == "ok"]
    assert Counter(r["method"] for r in xpaste_toy["03_annotation"].rows) == {
        "fallback_flood": len(generated),
        "fallback_grabcut": len(generated),
    }
    run = xpaste_toy["04_filtration"]
    decided = [r for r in run.rows if r.get("status") != "error"]
    assert len(decided) == len(masks)
    kept = [r for r in decided if r["keep"]]
    assert max(Counter(r["generation_id"] for r in kept).values()) == 1  # no image twice in the pool
    # every image with two candidate masks: one chosen by max-CLIP, the other dropped saying why
    fused = {r["generation_id"] for r in decided if r.get("fused_from") == ["fallback_flood", "fallback_grabcut"]}
    losers = [r for r in decided if (r["reason"] or "").startswith("max-CLIP:")]
    assert fused and len(losers) == len(fused)
    assert {r["method"] for r in kept} == {"fallback_flood", "fallback_grabcut"}  # each wins somewhere
    by_model = Counter(r["model"] for r in kept)
    assert by_model == {"toy_flat": 40, "toy_soft": 40}  # each quota full: more passed than it holds
    assert any(NOT_DRAWN in (r["reason"] or "") for r in decided)
    pool = resolve_pool_paths(read_instance_pool(run.pools["merged"]), run.pools["merged"].parent)
    assert sum(len(entries) for entries in pool.values()) == len(kept)
    table = filtration.summarize(run)
    assert {row["generator"]: row["kept"] for row in table} == {"toy_flat": 40, "toy_soft": 40}
    assert all(row["dropped: max-CLIP"] > 0 and row["passed, not drawn for the pool"] > 0 for row in table)
