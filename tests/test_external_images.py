"""External images (``generation.external``): a folder of images with a category each — as ``<category>/<file>`` or
listed in a csv / json file — becomes generation-manifest rows beside the generated ones; bad entries are error rows
with their reason, a malformed listing one line; a rerun redoes only what changed; annotation, filtration and the
pool treat the images like generated ones."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from divergen_lib.annotation import stage as annotation
from divergen_lib.config import ConfigError, load_config
from divergen_lib.errors import InputError
from divergen_lib.filtration import stage as filtration
from divergen_lib.formats import read_image, read_instance_pool
from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator
from divergen_lib.generation import stage as generation
from divergen_lib.generation.config import CategorySelection
from divergen_lib.generation.plan import resolve_categories
from divergen_lib.preflight import preflight

from .conftest import REPO_ROOT, SMOKE_FILTRATION, run_cli

SMOKE = REPO_ROOT / "params" / "smoke"
FLAT = "{name: toy_flat, backend: toy, options: {world: %s, style: flat, size: 64}}"


def categories(world):
    return resolve_categories(CategorySelection(toyworld=world.root, include_extra=False))


def render(world, cid, name, seed):
    """A toy_soft rendering of category ``cid``: the stand-in for a retrieved photo."""
    soft = ModelConfig(name="soft", backend="toy", options={"world": str(world.root), "style": "soft", "size": 80})
    request = GenerationRequest(f"web-{cid}-{seed}", cid, name, f"a photo of {name}", "template", 0, 0, "soft", seed)
    return build_generator(soft).generate([request])[0].image


@pytest.fixture(scope="module")
def web(tmp_path_factory, smoke_world):
    """``<category name>/<file>`` for categories 1–3 (PNG and JPEG, one folder named by id), and bad entries: an
    unknown category's folder, a file that is no image, two files of one stem, a stray top-level file."""
    root = tmp_path_factory.mktemp("web")
    cats = categories(smoke_world)[:3]
    for k, cat in enumerate(cats):
        folder = root / (str(cat["id"]) if k == 2 else cat["name"])
        folder.mkdir()
        for seed in range(3):
            image = Image.fromarray(render(smoke_world, cat["id"], cat["name"], seed))
            image.save(folder / (f"img{seed}.jpg" if seed == 1 else f"img{seed}.png"))
    (root / "not_a_category").mkdir()
    Image.fromarray(render(smoke_world, 1, cats[0]["name"], 9)).save(root / "not_a_category" / "x.png")
    (root / cats[0]["name"] / "broken.png").write_bytes(b"not an image at all")
    shutil.copy(root / cats[1]["name"] / "img0.png", root / cats[1]["name"] / "img0.jpeg")
    (root / "README.txt").write_text("retrieved with a search engine\n")
    return root, cats


def external_config(world, out, folder, *extra, models=True):
    overrides = [
        f"output_dir={out}",
        f"generation.categories.toyworld={world.root}",
        "generation.categories.include_extra=false",
        "generation.categories.ids=[1, 2, 3]",
        "generation.images_per_category=2",
        f"generation.models=[{FLAT % world.root}]" if models else "generation.models=[]",
        f"generation.external=[{{name: web, folder: {folder}}}]",
        *extra,
    ]
    return load_config(SMOKE / "02_generation.yaml", overrides)


def web_rows(run):
    return {r["id"]: r for r in run.rows if r["model"] == "web"}


def test_a_folder_of_images_joins_the_manifest_as_generated_images_do(smoke_world, web, tmp_path):
    folder, cats = web
    run = generation.run(external_config(smoke_world, tmp_path, folder))
    rows = web_rows(run)
    ok = {i: r for i, r in rows.items() if r["status"] == "ok"}
    assert Counter(r["category_id"] for r in ok.values()) == {1: 3, 2: 2, 3: 3}  # img0 of category 2: two stems
    generated = [r for r in run.rows if r["model"] == "toy_flat"]
    assert len(generated) == 6 and set(generated[0]) == set(next(iter(ok.values())))  # the same keys
    for row in ok.values():
        assert row["prompt_source"] == "external" and row["category_name"] == cats[row["category_id"] - 1]["name"]
        assert row["path"] == f"images/web/{row['category_id']:05d}/{Path(row['prompt']).stem}.png"
        copy, source = read_image(tmp_path / "generation" / row["path"]), read_image(folder / row["prompt"])
        assert copy.shape == source.shape == (row["height"], row["width"], 3)
        assert np.array_equal(copy, source)  # a lossless copy of what was decoded (JPEG included)
    assert ok["web-00003-img1"]["prompt"] == "3/img1.jpg"  # a folder named by category id
    errors = {i: r["reason"] for i, r in rows.items() if r["status"] == "error"}
    assert "unknown category 'not_a_category'" in errors["web-not_a_category-x"]
    assert "broken.png" in errors["web-00001-broken"]
    assert "share the stem 'img0'" in errors["web-00002-img0"]
    assert len(errors) == 3 and not any("README" in r["prompt"] for r in rows.values())
    manifest = [json.loads(line) for line in (tmp_path / "generation" / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in manifest] == [r["id"] for r in run.rows]
    figures = generation.save_figures(run, external_config(smoke_world, tmp_path, folder))
    assert all(p.stat().st_size > 1000 for p in figures.values())


def test_a_csv_or_json_listing_names_each_files_category(smoke_world, web, tmp_path):
    folder, cats = web
    first, second = (f"{cat['name']}/img{k}.png" for cat, k in ((cats[0], 0), (cats[1], 2)))
    pairs = [(first, cats[0]["name"]), (second, "2"), ("3/img1.jpg", "9")]
    csv_listing = tmp_path / "listing.csv"
    csv_listing.write_text("file,category\n" + "".join(f"{f},{c}\n" for f, c in pairs))
    json_listing = tmp_path / "listing.json"
    json_listing.write_text(json.dumps([{"file": f, "category": int(c) if c.isdigit() else c} for f, c in pairs]))
    for listing in (csv_listing, json_listing):
        source = f"generation.external=[{{name: web, folder: {folder}, listing: {listing}}}]"
        run = generation.run(external_config(smoke_world, tmp_path / listing.suffix[1:], folder, source, models=False))
        assert [(r["id"], r["status"]) for r in run.rows] == [
            ("web-00001-img0", "ok"),
            ("web-00002-img2", "ok"),
            ("web-9-img1", "error"),  # category 9 is not among the generation's categories (ids 1-3)
        ]
        assert run.prompts == {} and "unknown category '9'" in run.rows[2]["reason"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("path,label\na.png,1\n", "no file and category column"),
        ("file,category\na.png,\n", "line 2: empty file or category"),
        ('{"file": "a.png"}', "expected a list of {file, category} objects"),
        ('[{"file": "a.png", "category": true}]', "entry 0"),
        ("[{", "listing.json"),
    ],
)
def test_a_malformed_listing_is_one_line_before_any_output(smoke_world, web, tmp_path, text, says):
    listing = tmp_path / ("listing.csv" if text.startswith(("path", "file")) else "listing.json")
    listing.write_text(text)
    source = f"generation.external=[{{name: web, folder: {web[0]}, listing: {listing}}}]"
    with pytest.raises(InputError, match=r"listing") as err:
        generation.run(external_config(smoke_world, tmp_path, web[0], source))
    assert says in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "generation" / "manifest.jsonl").exists()


def test_cli_bad_external_source_is_one_line(smoke_world, tmp_path):
    overrides = [
        f"output_dir={tmp_path}",
        f"generation.categories.toyworld={smoke_world.root}",
        f"generation.external=[{{name: web, folder: {tmp_path / 'nowhere'}}}]",
    ]
    sets = [arg for override in overrides for arg in ("--set", override)]
    done = run_cli("generate", "--params", str(SMOKE / "02_generation.yaml"), *sets)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "generation.external web: folder not found" in done.stderr


def test_sources_need_distinct_names_and_something_to_bring(smoke_world, web, tmp_path):
    with pytest.raises(ConfigError, match=r"\['toy_flat'\] are generation.models names too"):
        external_config(smoke_world, tmp_path, web[0], f"generation.external=[{{name: toy_flat, folder: {web[0]}}}]")
    with pytest.raises(ConfigError, match="both empty"):
        external_config(smoke_world, tmp_path, web[0], "generation.external=[]", models=False)
    missing = preflight(
        [SMOKE / "02_generation.yaml"],
        [f"output_dir={tmp_path / 'out'}", f"generation.external=[{{name: web, folder: {tmp_path / 'web'}}}]"],
    )
    assert [m.what for m in missing] == ["image folder of external source web"]


def test_a_rerun_redoes_only_the_images_that_changed(smoke_world, web, tmp_path):
    folder = tmp_path / "web"
    shutil.copytree(web[0], folder)
    config = external_config(smoke_world, tmp_path, folder)
    first = web_rows(generation.run(config))
    out = tmp_path / "generation"
    made = {i: (out / r["path"]).stat().st_mtime_ns for i, r in first.items() if r["status"] == "ok"}
    changed = folder / web[1][0]["name"] / "img2.png"
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new file with an old time: the size and time differ from the first run's
    second = web_rows(generation.run(config))
    again = {i: (out / r["path"]).stat().st_mtime_ns for i, r in second.items() if r["status"] == "ok"}
    assert [i for i in made if made[i] != again[i]] == ["web-00001-img2"]
    assert (second["web-00001-img2"]["width"], second["web-00001-img2"]["height"]) == (40, 30)
    assert {i: r for i, r in second.items() if i != "web-00001-img2"} == {
        i: r for i, r in first.items() if i != "web-00001-img2"
    }


def test_external_images_are_annotated_filtered_and_pooled_like_generated_ones(
    smoke_world, web, smoke_toy_clip, tmp_path
):
    os.symlink(smoke_world.root, tmp_path / "toyworld")
    shutil.copytree(smoke_toy_clip, tmp_path / "clip")
    gen = generation.run(external_config(smoke_world, tmp_path, web[0]))
    ann = annotation.run(load_config(SMOKE / "03_annotation.yaml", [f"output_dir={tmp_path}"]))
    ok_images = {r["id"] for r in gen.rows if r["status"] == "ok"}
    assert {r["generation_id"] for r in ann.rows} == ok_images  # error rows are not annotated
    quotas = (
        "filtration.pool.quotas=[{name: generated, max_instances: 3, kind: generated},"
        " {name: web, max_instances: 4, kind: external}]"
    )
    run = filtration.run(load_config(SMOKE_FILTRATION, [f"output_dir={tmp_path}", quotas]))
    kept = [r for r in run.rows if r.get("keep")]
    assert Counter(r["model"] for r in kept) == {"toy_flat": 3, "web": 4}
    pool = read_instance_pool(run.pools["merged"])
    assert sum(len(entries) for entries in pool.values()) == 7
    table = {row["generator"]: row for row in filtration.summarize(run)}
    assert table["web"]["kind"] == "external" and table["web"]["prompt source"] == "external"
    assert table["toy_flat"]["kind"] == "generated" and table["web"]["kept"] == 4
