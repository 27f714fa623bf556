"""A rerun after a method setting changed ends with exactly the outputs of a fresh run with the new setting: every
manifest row records the digest of what made it, and the rows (images, masks, scores, crops) a change decides
are redone, downstream too, while the others are kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from divergen_lib.annotation import stage as annotation
from divergen_lib.config import load_config
from divergen_lib.filtration import stage as filtration
from divergen_lib.formats import read_manifest
from divergen_lib.generation import stage as generation

from .conftest import REPO_ROOT
from .test_generation import toy_models

pytestmark = pytest.mark.slow
SMOKE = REPO_ROOT / "params" / "smoke"
CHAIN = [  # (folder, params file, run)
    ("generation", SMOKE / "02_generation.yaml", generation.run),
    ("annotation", SMOKE / "03_annotation.yaml", annotation.run),
    ("filtration", SMOKE / "04_filtration.yaml", filtration.run),
]


@dataclass(frozen=True)
class Change:
    """A ``--set`` value whose stage (``first``) and every later one must redo what it decides."""

    description: str
    setting: str
    first: str


CHANGES = [
    Change("prompts", "generation.prompts.attributes=1", "generation"),
    Change("seed", "seed=5", "generation"),
    Change("a post-processing option", "annotation.postprocess.min_side=12", "annotation"),
    Change("the CLIP-score text", "filtration.clip_score.template=a drawing of a {name}", "filtration"),
    Change("crop padding", "filtration.inter_similarity.crop_padding=0", "filtration"),
]


def overrides(out: Path, world) -> list[str]:
    return [
        f"output_dir={out}",
        f"generation.categories.toyworld={world.root}",
        toy_models(world),
        f"filtration.real.annotations={world.json_path('train')}",
        f"filtration.real.image_root={world.root}",
        "filtration.toy_clip.steps=4",  # the CLIP only has to be the same in every run, not good
    ]


def run_chain(out: Path, world, first: str = "generation", setting: str | None = None) -> None:
    """The stages from ``first`` on, in process, into ``out`` (the earlier ones' folders must be there), with
    ``setting`` given to the stage of its section (to every stage for a common key)."""
    folders = [folder for folder, _, _ in CHAIN]
    for folder, params, run in CHAIN[folders.index(first) :]:
        section = setting.split(".")[0] if setting else None
        extra = [setting] if setting and (section == folder or section not in folders) else []
        run(load_config(params, [*overrides(out, world), *extra]))


def outputs(folder: Path) -> dict[str, bytes]:
    """A stage folder's files but the shards (which keep the rows of earlier settings) and the lock."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "shards" not in p.relative_to(folder).parts and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory, smoke_world):
    out = tmp_path_factory.mktemp("base")
    run_chain(out, smoke_world)
    return out


@pytest.mark.parametrize("change", CHANGES, ids=[c.description for c in CHANGES])
def test_a_rerun_after_a_setting_changed_equals_a_fresh_run(change, base, smoke_world, tmp_path):
    rerun, fresh = tmp_path / "rerun", tmp_path / "fresh"
    shutil.copytree(base, rerun)
    shutil.copytree(base / "clip", fresh / "clip")  # the toy CLIP's cache: the same weights, no retraining
    folders = [folder for folder, _, _ in CHAIN]
    for folder in folders[: folders.index(change.first)]:
        shutil.copytree(base / folder, fresh / folder)
    run_chain(rerun, smoke_world, change.first, change.setting)
    run_chain(fresh, smoke_world, change.first, change.setting)

    changed = base / change.first / "manifest.jsonl", fresh / change.first / "manifest.jsonl"
    assert read_manifest(changed[0]) != read_manifest(changed[1]), "the change decides nothing here"
    for folder in folders[folders.index(change.first) :]:
        expected, got = outputs(fresh / folder), outputs(rerun / folder)
        assert [name for name in expected if got.get(name) != expected[name]] == [], folder
        assert [name for name in got if name not in expected and name.endswith(".jsonl")] == [], folder
