import colorsys

import numpy as np
import pytest

from divergen_lib.config import ConfigError, load_config
from divergen_lib.errors import InputError
from divergen_lib.formats import read_image, read_manifest
from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator, derive_seed
from divergen_lib.generation import stage as generation
from divergen_lib.generation.config import CategorySelection
from divergen_lib.generation.plan import resolve_categories
from divergen_lib.prompts import attribute_prompts, template_prompt

from .conftest import REPO_ROOT, interrupted_after, run_cli

SMOKE = REPO_ROOT / "params" / "smoke" / "02_generation.yaml"


def toy_models(world, flat_batch=1, soft_batch=2):
    """A --set override with the two toy styles rendering from ``world``."""

    def model(style, batch):
        options = f"{{world: {world.root}, style: {style}, size: 64}}"
        return f"{{name: toy_{style}, backend: toy, batch_size: {batch}, options: {options}}}"

    return f"generation.models=[{model('flat', flat_batch)}, {model('soft', soft_batch)}]"


def smoke_config(world, out, *extra, batches=(1, 2)):
    overrides = [f"output_dir={out}", f"generation.categories.toyworld={world.root}", toy_models(world, *batches)]
    return load_config(SMOKE, [*overrides, *extra])


def toy(world, style="flat", size=64):
    return build_generator(
        ModelConfig(name=style, backend="toy", options={"world": str(world.root), "style": style, "size": size})
    )


def request(cid, name, prompt, seed, model="flat"):
    return GenerationRequest(f"{model}-{cid}-{seed}", cid, name, prompt, "template", 0, 0, model, seed)


def mean_hue(image, mask):
    r, g, b = image[mask].mean(0) / 255
    return colorsys.rgb_to_hsv(r, g, b)[0]


def test_derived_seeds_are_stable_and_distinct():
    seeds = {derive_seed(0, m, c, p, s) for m in ("a", "b") for c in (1, 2) for p in (0, 1) for s in (0, 1)}
    assert len(seeds) == 16 and derive_seed(0, "a", 1, 0, 0) == derive_seed(0, "a", 1, 0, 0)
    assert all(0 <= s < 2**63 for s in seeds)


def test_toy_generator_is_a_function_of_prompt_and_seed_with_true_mask(smoke_world):
    spec = smoke_world.categories[0]
    gen = toy(smoke_world)
    a, b = gen.generate([request(spec.id, spec.name, template_prompt(spec.name, ""), s) for s in (5, 5)])
    assert np.array_equal(a.image, b.image) and a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8
    c = gen.generate([request(spec.id, spec.name, template_prompt(spec.name, ""), 6)])[0]
    assert not np.array_equal(a.image, c.image)
    non_white = (a.image < 250).any(-1)  # flat style: plain white background
    assert (non_white & a.mask).sum() / (non_white | a.mask).sum() > 0.95


def test_colour_words_steer_the_hue(smoke_world):
    spec = smoke_world.categories[1]
    gen = toy(smoke_world)
    for word, hue in (("blue", 0.62), ("green", 0.33)):
        out = gen.generate([request(spec.id, spec.name, f"A photo of a {word} {spec.name}", s) for s in range(4)])
        hues = [mean_hue(o.image, o.mask) for o in out]
        assert all(abs(h - hue) < 0.08 for h in hues), (word, hues)


def test_attribute_prompts_cover_more_appearance_than_the_template(smoke_world):
    gen = toy(smoke_world)
    spreads = []
    for spec in smoke_world.categories[:6]:
        plain = gen.generate([request(spec.id, spec.name, template_prompt(spec.name, ""), s) for s in range(8)])
        varied = gen.generate(
            [request(spec.id, spec.name, p, s) for s, p in enumerate(attribute_prompts(spec.name, 8, seed=spec.id))]
        )
        spreads.append([np.std([o.image[o.mask].mean(0) for o in outs], axis=0).mean() for outs in (plain, varied)])
    plain_spread, varied_spread = np.mean(spreads, axis=0)
    assert varied_spread > 2 * plain_spread


def test_two_styles_have_different_typical_looks(smoke_world):
    spec = smoke_world.categories[2]
    looks = {}
    for style in ("flat", "soft"):
        outs = toy(smoke_world, style).generate([request(spec.id, spec.name, "a photo", s) for s in range(6)])
        looks[style] = np.mean([o.image[o.mask].mean(0) for o in outs], axis=0)
    assert np.abs(looks["flat"] - looks["soft"]).max() > 5


def test_stage_is_deterministic_and_regenerates_any_image_alone(smoke_world, tmp_path):
    first = generation.run(smoke_config(smoke_world, tmp_path / "a"))
    second = generation.run(smoke_config(smoke_world, tmp_path / "b"))
    assert first.manifest_path.read_bytes() == second.manifest_path.read_bytes()
    n_cats = len(smoke_world.categories) + len(smoke_world.extra_categories)
    assert len(first.rows) == n_cats * 3 * 2 and all(r["status"] == "ok" for r in first.rows)
    row = first.rows[-1]
    model = smoke_config(smoke_world, tmp_path / "a").section("generation").models[1]
    again = build_generator(model).generate(
        [GenerationRequest(**{k: row[k] for k in GenerationRequest.__annotations__})]
    )
    assert np.array_equal(again[0].image, read_image(tmp_path / "a" / "generation" / row["path"]))


def test_batch_size_does_not_change_the_result(smoke_world, tmp_path):
    one = generation.run(smoke_config(smoke_world, tmp_path / "one", "generation.images_per_category=2"))
    many = smoke_config(smoke_world, tmp_path / "many", "generation.images_per_category=2", batches=(5, 3))
    assert generation.run(many).manifest_path.read_bytes() == one.manifest_path.read_bytes()


def test_interrupted_run_resumes_to_the_uninterrupted_result(smoke_world, tmp_path):
    reference = generation.run(smoke_config(smoke_world, tmp_path / "ref"))
    with interrupted_after(generation._BatchWriter, 20):
        generation.run(smoke_config(smoke_world, tmp_path / "run"))
    assert not (tmp_path / "run" / "generation" / "manifest.jsonl").exists()
    resumed = generation.run(smoke_config(smoke_world, tmp_path / "run"))
    assert resumed.manifest_path.read_bytes() == reference.manifest_path.read_bytes()
    for row in reference.rows[::7]:
        a = (tmp_path / "ref" / "generation" / row["path"]).read_bytes()
        assert a == (tmp_path / "run" / "generation" / row["path"]).read_bytes()


def test_unknown_model_path_is_one_error_before_any_output(smoke_world, tmp_path):
    config = load_config(
        SMOKE,
        [
            f"output_dir={tmp_path}",
            f"generation.categories.toyworld={smoke_world.root}",
            f"generation.models=[{{name: broken, backend: toy, options: {{world: {tmp_path / 'nowhere'}}}}}]",
        ],
    )
    with pytest.raises(ConfigError, match="model broken: no toy world at .*nowhere"):
        generation.run(config)
    assert not (tmp_path / "generation" / "images").exists()
    assert not list((tmp_path / "generation").glob("manifest*.jsonl"))


def test_malformed_prompt_file_stops_before_any_output(smoke_world, tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "1.txt").write_text("a shape without the suffix\n")
    config = smoke_config(smoke_world, tmp_path / "out", f"generation.prompts.llm_dir={folder}")
    with pytest.raises(InputError, match=r"1\.txt:1: prompt does not end with"):
        generation.run(config)
    assert not (tmp_path / "out" / "generation").exists()


def test_category_id_not_in_metadata(smoke_world, tmp_path):
    with pytest.raises(ConfigError, match=r"category ids \[999\] are not in the category metadata"):
        generation.run(smoke_config(smoke_world, tmp_path, "generation.categories.ids=[1, 999]"))


def test_params_errors_name_the_key(smoke_world, tmp_path):
    with pytest.raises(ConfigError, match=r"generation\.models\[0\]\.backend: expected one of 'toy'"):
        load_config(SMOKE, ["generation.models=[{name: x, backend: dalle}]"])
    with pytest.raises(ConfigError, match=r"model toy_flat options: unknown key 'styl'"):
        build_generator(
            ModelConfig(name="toy_flat", backend="toy", options={"world": str(smoke_world.root), "styl": 1})
        )


def test_cli_generate_reports_bad_input_in_one_line(tmp_path):
    missing = f"generation.categories.toyworld={tmp_path / 'missing'}"
    done = run_cli("generate", "--params", str(SMOKE), "--set", f"output_dir={tmp_path}", "--set", missing)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "missing" in done.stderr


def test_figures_are_written(smoke_world, tmp_path):
    config = smoke_config(smoke_world, tmp_path)
    paths = generation.save_figures(generation.run(config), config)
    assert all(p.stat().st_size > 1000 for p in paths.values())
    rows = read_manifest(tmp_path / "generation" / "manifest.jsonl")
    assert {r["prompt_source"] for r in rows} == {"template", "attributes"}


REFERENCE = REPO_ROOT.parent / "shared" / "data" / "divergen_reference"


@pytest.mark.skipif(not (REFERENCE / "lvis_v1_train_cat_info.json").exists(), reason="../shared reference data absent")
def test_paper_categories_are_lvis_plus_divergens_250_imagenet_extras():
    from divergen_lib.formats import read_json
    from divergen_lib.wordnet import missing_wordnet_files

    if missing_wordnet_files():
        pytest.skip("Debian WordNet files absent (apt-get install wordnet-base wordnet-sense-index)")
    selection = CategorySelection(metadata=REFERENCE / "lvis_v1_train_cat_info.json", imagenet_extras=250)
    categories = resolve_categories(selection)
    reference = read_json(REFERENCE / "ImageNet2012_filtered04_lvis_v1_train_cat_info_250.json")
    assert [{k: v for k, v in c.items() if k != "extra"} for c in categories] == reference
    assert [c["id"] for c in categories if c.get("extra")] == list(range(1204, 1454))


def test_options_of_every_shipped_params_file_fit_their_backend():
    from divergen_lib.annotation import annotator_class
    from divergen_lib.config import parse_options
    from divergen_lib.generation.base import backend_class

    checked = 0
    for path in sorted((REPO_ROOT / "params").glob("*/0[123]_*.yaml")):
        config = load_config(path)
        models = list(config.section("generation").models) if "generation" in config.sections else []
        if "analysis" in config.sections:
            models += [m for s in config.section("analysis").generated for m in s.models]
        if models:
            for model in models:
                parse_options(backend_class(model.backend).options_cls, model.options, f"{path}: model {model.name}")
                checked += 1
        if "annotation" in config.sections:
            for method in config.section("annotation").methods:
                parse_options(annotator_class(method.method).options_cls, method.options, f"{path}: {method.name}")
                checked += 1
    assert checked >= 20
