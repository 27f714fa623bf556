import pytest

from divergen_lib.analysis import embeddings
from divergen_lib.analysis import stage as analysis
from divergen_lib.config import load_config
from divergen_lib.formats import read_json

from .conftest import REPO_ROOT

SMOKE = REPO_ROOT / "params" / "smoke" / "01_distribution_analysis.yaml"


def smoke_config(out, world):
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
    return load_config(SMOKE, [f"output_dir={out}", f"analysis.categories.toyworld={root}", *sets, generated])


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
