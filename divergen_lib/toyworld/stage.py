"""The ``toyworld`` stage: build the world for a params file and save its overview figures."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..distributed import require_single_process
from ..formats import read_lvis
from ..viz import instance_crops, plot_category_frequency, plot_crop_rows, plot_examples, save_figure
from .build import TOY_LABEL, ToyWorld, build_toyworld


def run(config: Config) -> ToyWorld:
    """Build (or reuse) ``<output_dir>/toyworld``."""
    require_single_process("the toyworld stage")
    section = config.section("toyworld")
    world = build_toyworld(section, config.stage_dir("toyworld"), seed=config.common.seed)
    return world


def save_figures(world: ToyWorld, config: Config) -> dict[str, Path]:
    """The overview figures of the world under ``<output_dir>/figures``."""
    return save_overview_figures(world, config.figures_dir, config.section("toyworld").report.examples)


def save_overview_figures(world: ToyWorld, out_dir: str | Path, n_examples: int = 8) -> dict[str, Path]:
    """Example images with masks, the category-frequency histogram, and train-vs-val crops of rare categories."""
    out_dir = Path(out_dir)
    train, val = read_lvis(world.json_path("train")), read_lvis(world.json_path("val"))
    paths = {
        "examples": save_figure(
            plot_examples(train, world.root, n_examples, title=f"{TOY_LABEL}: train images and masks"),
            out_dir / "toyworld_examples.png",
        ),
        "frequency": save_figure(
            plot_category_frequency(train["categories"], world.thresholds, title="Toy world: long tail (train)"),
            out_dir / "toyworld_frequency.png",
        ),
    }
    rare = [c for c in train["categories"] if c["frequency"] == "r"][:3]
    rows = {}
    for cat in rare:
        rows[f"{cat['name']}\ntrain"] = instance_crops(train, world.root, cat["id"], 8)
        rows[f"{cat['name']}\nval"] = instance_crops(val, world.root, cat["id"], 8)
    if rows:
        title = "Rare categories: a narrow slice of their appearance in train, the full range in val"
        paths["rare_crops"] = save_figure(plot_crop_rows(rows, title), out_dir / "toyworld_rare_crops.png")
    return paths


def summarize(world: ToyWorld) -> list[dict]:
    """Per LVIS frequency group: categories, train image-count range, train and val instances."""
    train, val = read_lvis(world.json_path("train")), read_lvis(world.json_path("val"))
    val_instances: dict[int, int] = {}
    for ann in val["annotations"]:
        val_instances[ann["category_id"]] = val_instances.get(ann["category_id"], 0) + 1
    rows = []
    for group, label in (("r", "rare"), ("c", "common"), ("f", "frequent")):
        cats = [c for c in train["categories"] if c["frequency"] == group]
        counts = [c["image_count"] for c in cats] or [0]
        rows.append(
            {
                "group": label,
                "categories": len(cats),
                "train images per category": f"{min(counts)}-{max(counts)}",
                "train instances": sum(c["instance_count"] for c in cats),
                "val instances": sum(val_instances.get(c["id"], 0) for c in cats),
            }
        )
    return rows
