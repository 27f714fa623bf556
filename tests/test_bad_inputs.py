"""Bad inputs, one table: each is reported as one clear line (CLI: ``error: ...``, exit 2, no traceback, nothing
written), or, for a bad item among good ones, as an ``error`` row of the stage's manifest while the stage completes.

To add a case, write a builder that makes the bad input under ``tmp_path`` and returns the CLI arguments (a list)
or a library call (a function without arguments), and add a :class:`Case` row to ``CASES``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from divergen_lib.crops import annotation_crops
from divergen_lib.errors import InputError
from divergen_lib.evaluation.metrics_file import metrics_record
from divergen_lib.formats import (
    PoolEntry,
    image_file,
    read_lvis,
    read_manifest,
    resolve_pool_paths,
    write_json,
    write_png,
)
from divergen_lib.training.checkpoints import load_checkpoint, save_checkpoint
from divergen_lib.training.data import PoolCrops

from .conftest import (
    REPO_ROOT,
    SMOKE_TRAINING,
    png_claiming,
    run_cli,
    smoke_generation_overrides,
    smoke_training,
    smoke_training_overrides,
)

SMOKE = REPO_ROOT / "params" / "smoke"

Fixture = Callable[[str], Any]  # a conftest fixture by name, made only when a case needs it
Target = list[str] | Callable[[], Any]  # CLI arguments, or a library call
CODE_RAN = "code from a file ran"  # what the files that would run code print if they did


@dataclass(frozen=True)
class Case:
    """``build(tmp_path, fixture)`` makes the bad input and returns what to run; the one-line error must match
    ``expected``, and the CLI writes no file unless ``writes_nothing`` is false. With ``error_row_in`` (a manifest
    under ``tmp_path``) the CLI completes instead and exits 1 with one line counting the failed items, and the
    manifest has exactly one ``error`` row, whose reason matches ``expected``."""

    description: str
    build: Callable[[Path, Fixture], Target]
    expected: str
    error_row_in: str | None = None
    writes_nothing: bool = True


def cli(stage: str, params: Path, *overrides: str) -> list[str]:
    return [stage, "--params", str(params), *(arg for value in overrides for arg in ("--set", value))]


def train(tmp_path: Path, fixture: Fixture, *overrides: str) -> list[str]:
    """The smoke training of the smoke world into ``tmp_path/out``, one baseline run, with ``overrides``."""
    defaults = smoke_training_overrides(tmp_path / "out", fixture("smoke_world"))
    return cli("train", SMOKE_TRAINING, *defaults, *overrides)


PoolFiles = dict[str, np.ndarray | bytes]  # file name -> image array, or the file's bytes
OPAQUE_CROP: PoolFiles = {"crop.png": np.full((8, 8, 4), 255, np.uint8)}


def write_pool_files(folder: Path, files: PoolFiles) -> None:
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            write_png(content, folder / name)


def train_with_pool(pool_text: str, files: PoolFiles = OPAQUE_CROP) -> Callable[[Path, Fixture], Target]:
    """Training with a pool json of ``pool_text`` beside ``files`` (by default an RGBA crop ``crop.png``)."""

    def build(tmp_path: Path, fixture: Fixture) -> Target:
        write_pool_files(tmp_path, files)
        (tmp_path / "pool.json").write_text(pool_text)
        return train(tmp_path, fixture, f"training.runs=[{{name: pasted, pool: {tmp_path / 'pool.json'}}}]")

    return build


def draw_pool_entry(entry: str, files: PoolFiles) -> Callable[[Path, Fixture], Target]:
    """Training's draw of the pool entry ``entry`` (paths relative to ``files``' folder) of category 1."""

    def build(tmp_path: Path, fixture: Fixture) -> Target:
        write_pool_files(tmp_path, files)
        (resolved,) = resolve_pool_paths({0: [PoolEntry.parse(entry)]}, tmp_path)[0]
        return lambda: PoolCrops([resolved], f"instance pool {tmp_path / 'pool.json'}: category 1")[0]

    return build


def corrupt_generated_png(tmp_path: Path, fixture: Fixture) -> Target:
    generation = fixture("smoke_generation")
    shutil.copytree(generation.out_dir, tmp_path / "generation")
    (tmp_path / "generation" / generation.rows[0]["path"]).write_bytes(b"not a png")
    return cli(
        "annotate",
        SMOKE / "03_annotation.yaml",
        f"output_dir={tmp_path}",
        f"annotation.generation_dir={tmp_path}/generation",
    )


def torn_generation_manifest(tmp_path: Path, fixture: Fixture) -> Target:
    shutil.copytree(fixture("smoke_generation").out_dir, tmp_path / "generation")
    manifest = tmp_path / "generation" / "manifest.jsonl"
    manifest.write_bytes(manifest.read_bytes()[:-40])
    return cli("annotate", SMOKE / "03_annotation.yaml", f"output_dir={tmp_path}")


def training_json_with_unknown_category(tmp_path: Path, fixture: Fixture) -> Target:
    data = read_lvis(fixture("smoke_world").json_path("train"))
    data["annotations"][0]["category_id"] = 999
    write_json(data, tmp_path / "train.json")
    return train(tmp_path, fixture, f"training.train.annotations={tmp_path / 'train.json'}")


def training_json_without_annotations(tmp_path: Path, fixture: Fixture) -> Target:
    data = read_lvis(fixture("smoke_world").json_path("train"))
    write_json({**data, "annotations": []}, tmp_path / "train.json")
    return train(tmp_path, fixture, f"training.train.annotations={tmp_path / 'train.json'}")


def crops_of_an_image_smaller_than_its_masks(tmp_path: Path, fixture: Fixture) -> Target:
    """Real-instance crops of a world image replaced by one of half its size."""
    data = read_lvis(fixture("smoke_world").json_path("train"))
    first = data["images"][0]
    write_png(np.zeros((first["height"] // 2, first["width"] // 2, 3), np.uint8), image_file(first, tmp_path))
    annotations = [a for a in data["annotations"] if a["image_id"] == first["id"]]
    return lambda: annotation_crops({first["id"]: first}, annotations, tmp_path)


def resume_beside_another_model(tmp_path: Path, fixture: Fixture) -> Target:
    """Training the baseline run into a folder holding the last checkpoint of another run (more classes) and no
    ``run.json``."""
    _, output = fixture("trained")
    (tmp_path / "out" / "training" / "baseline").mkdir(parents=True)
    shutil.copy(output.layout.checkpoint, tmp_path / "out" / "training" / "baseline" / "last.pth")
    return train(tmp_path, fixture)


def resume_from_a_checkpoint_of_another_model(tmp_path: Path, fixture: Fixture) -> Target:
    """A trained baseline whose ``last.pth`` is then replaced by one of another shape (its run.json and classes
    unchanged) and whose final model is removed, so that training resumes from it."""
    target = train(tmp_path, fixture)
    assert run_cli(*target).returncode == 0
    folder = tmp_path / "out" / "training" / "baseline"
    checkpoint = load_checkpoint(folder / "last.pth")
    name = next(k for k in checkpoint["model"] if k.endswith("cls_score.weight"))
    checkpoint["model"][name] = torch.zeros(3, checkpoint["model"][name].shape[1])
    save_checkpoint(checkpoint, folder / "last.pth")
    for final in folder.glob("model_final*.pth"):
        final.unlink()
    return target


def generate_a_mistyped_count(tmp_path: Path, fixture: Fixture) -> Target:
    overrides = smoke_generation_overrides(tmp_path / "out", fixture("smoke_world"))[1:]
    return cli("generate", SMOKE / "02_generation.yaml", *overrides, "generation.images_per_category=1000000000000")


def world_without_images(tmp_path: Path, fixture: Fixture) -> Target:
    world = fixture("smoke_world")
    for split in ("train", "val"):
        shutil.copy(world.json_path(split), tmp_path / f"{split}.json")
    return train(
        tmp_path,
        fixture,
        f"training.train.annotations={tmp_path / 'train.json'}",
        f"training.train.image_root={tmp_path}",
    )


def world_with_unreadable_images(tmp_path: Path, fixture: Fixture) -> Target:
    """Every training image present but not an image; a data-loader worker process is the first to read one."""
    train_json = fixture("smoke_world").json_path("train")
    for image in read_lvis(train_json)["images"]:
        path = image_file(image, tmp_path / "world")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an image")
    return train(
        tmp_path,
        fixture,
        f"training.train.annotations={train_json}",
        f"training.train.image_root={tmp_path / 'world'}",
        "training.num_workers=1",
    )


def params_file(text: str) -> Callable[[Path, Fixture], Target]:
    def build(tmp_path: Path, fixture: Fixture) -> Target:
        (tmp_path / "bad.yaml").write_text(text)
        return cli("generate", tmp_path / "bad.yaml")

    return build


def params_beside_a_broken_common_link(tmp_path: Path, fixture: Fixture) -> Target:
    (tmp_path / "common.yaml").symlink_to(tmp_path / "gone" / "common.yaml")
    return params_file("generation:\n  images_per_category: 3\n")(tmp_path, fixture)


DETECTION = {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 4, 4]}


def evaluate_results_against_missing_ground_truth(tmp_path: Path, fixture: Fixture) -> Target:
    write_json([DETECTION], tmp_path / "results.json")
    return ["evaluate-results", "--gt", str(tmp_path / "none.json"), "--results", str(tmp_path / "results.json")]


def metrics_of_results_without_segmentation(tmp_path: Path, fixture: Fixture) -> Target:
    """bbox and segm metrics of a detection without a segmentation, against ground truth that no backend reads:
    the results are refused before a backend starts."""
    write_json({}, tmp_path / "gt.json")
    return lambda: metrics_record(tmp_path / "gt.json", [DETECTION], ("bbox", "segm"), "fast")


def evaluate_with_checkpoint(write: Callable[[Path], None]) -> Callable[[Path, Fixture], Target]:
    """Evaluation of a copy of the session's trained run whose evaluation checkpoint ``write`` replaces."""

    def build(tmp_path: Path, fixture: Fixture) -> Target:
        _, output = fixture("trained")
        run_dir = tmp_path / "training" / output.name
        run_dir.mkdir(parents=True)
        for name in ("run.json", "classes.json", "model_final.pth"):
            shutil.copy(output.out_dir / name, run_dir / name)
        write(run_dir / output.eval_checkpoint.name)
        return cli("evaluate", SMOKE / "06_evaluation.yaml", f"output_dir={tmp_path}")

    return build


def load_checkpoint_of(content: Any) -> Callable[[Path, Fixture], Target]:
    def build(tmp_path: Path, fixture: Fixture) -> Target:
        torch.save(content, tmp_path / "checkpoint.pth")
        return lambda: load_checkpoint(tmp_path / "checkpoint.pth")

    return build


class RunsCode:
    """Unpickling it calls ``print``: a full unpickler would run code from the file."""

    def __reduce__(self):
        return (print, (CODE_RAN,))


def detectron2_config(tmp_path: Path, fixture: Fixture, *overrides: str) -> Target:
    """The detectron2 training config of the smoke training params with ``overrides``."""
    pytest.importorskip("detectron2")
    from divergen_lib.training.detectron2_engine.d2config import TrainSetup, build_config

    overrides = ("training.engine=detectron2", *overrides)
    cfg = smoke_training(tmp_path, fixture("smoke_world"), *overrides).section("training")
    return lambda: build_config(cfg, 3, "cpu", TrainSetup("bad", tmp_path, 0))


def detectron2_config_with_python_tag(tmp_path: Path, fixture: Fixture) -> Target:
    (tmp_path / "d2.yaml").write_text(f'MODEL:\n  WEIGHTS: !!python/object/apply:builtins.print ["{CODE_RAN}"]\n')
    return detectron2_config(tmp_path, fixture, f"training.detectron2.config_file={tmp_path / 'd2.yaml'}")


CASES = [
    Case(
        "corrupt PNG among generated images",
        corrupt_generated_png,
        r"images/toy_flat/00001/000000\.png: unreadable image",
        error_row_in="annotation/manifest.jsonl",
    ),
    Case(
        "generation manifest cut mid-line",
        torn_generation_manifest,
        r"generation/manifest\.jsonl:\d+: not a JSON object",
    ),
    Case(
        "missing mask file of a pool entry",
        train_with_pool('{"0": ["crop.png|crop_mask.png"]}'),
        r"instance pool .*pool\.json: file of an entry of category \d+ not found: .*crop_mask\.png$",
    ),
    Case(
        "pool key beyond the category metadata",
        train_with_pool('{"99": ["*crop.png"]}'),
        r"instance pool .*pool\.json has category indices \[99\] beyond the \d+ categories of its metadata",
    ),
    Case("malformed pool json", train_with_pool('{"0": ["*crop.png"'), r"pool\.json: not valid JSON"),
    Case(
        "pool crop over the pixel limit",
        train_with_pool('{"0": ["*crop.png"]}', {"crop.png": png_claiming(9000, 9000)}),
        r"instance pool .*pool\.json: category \d+: .*crop\.png: 9000×9000 image \(81000000 pixels\) is over the "
        r"limit of 16777216 pixels",
        writes_nothing=False,  # the run's class map and settings are written before a crop is drawn
    ),
    Case(
        "pool image|mask pair of two sizes",
        train_with_pool(
            '{"0": ["img.png|mask.png"]}',
            {"img.png": np.zeros((8, 8, 3), np.uint8), "mask.png": np.full((6, 8), 255, np.uint8)},
        ),
        r"instance pool .*pool\.json: category \d+: mask .*mask\.png is 8×6 px but its image .*img\.png is 8×8 px",
        writes_nothing=False,
    ),
    Case(
        "'*' pool crop without alpha",
        train_with_pool('{"0": ["*crop.png"]}', {"crop.png": np.zeros((8, 8, 3), np.uint8)}),
        r"instance pool .*pool\.json: category \d+: .*crop\.png: no alpha channel, so it would be pasted as a "
        r"rectangle",
        writes_nothing=False,
    ),
    Case(
        "fully transparent '*' pool crop",
        draw_pool_entry("*crop.png", {"crop.png": np.zeros((8, 8, 4), np.uint8)}),
        r"instance pool .*pool\.json: category 1: .*crop\.png: fully transparent \(alpha 0 everywhere\)",
    ),
    Case(
        "empty mask of a pool image|mask pair",
        draw_pool_entry(
            "img.png|mask.png", {"img.png": np.zeros((8, 8, 3), np.uint8), "mask.png": np.zeros((8, 8), np.uint8)}
        ),
        r"instance pool .*pool\.json: category 1: .*mask\.png: empty mask: nothing to crop",
    ),
    Case(
        "real instances of an image smaller than their masks",
        crops_of_an_image_smaller_than_its_masks,
        r"train/\d+\.png \(annotation \d+\): mask is \d+×\d+ px but its image is \d+×\d+ px",
    ),
    Case(
        "unknown category id in a training json annotation",
        training_json_with_unknown_category,
        r"train\.json: annotation \d+ refers to unknown category id 999",
    ),
    Case(
        "training json without annotations",
        training_json_without_annotations,
        r"train\.json: no annotations \(a training json needs at least one instance\)",
    ),
    Case(
        "missing training json",
        lambda tmp_path, fixture: train(tmp_path, fixture, f"training.train.annotations={tmp_path / 'none.json'}"),
        r"none\.json: file not found",
    ),
    Case(
        "training on a world whose images are missing",
        world_without_images,
        r"train\.json: (\d+) of its \1 images are not under training\.train\.image_root .* \(first: .*\.png\)",
    ),
    Case(
        "unreadable training image read by a data-loader worker",
        world_with_unreadable_images,
        r"world/train/\d+\.png: unreadable image \(cannot identify image file",
        writes_nothing=False,  # the run's class map and settings are written before training starts
    ),
    Case("params: invalid YAML", params_file("generation: {models: [\n"), r"bad\.yaml: not valid YAML"),
    Case(
        "params: unknown key",
        params_file("generation:\n  imgs_per_category: 3\n"),
        r"bad\.yaml: unknown key 'generation\.imgs_per_category' \(known keys: .*images_per_category",
    ),
    Case(
        "params: unknown nested key given by --set",
        lambda tmp_path, fixture: cli("generate", SMOKE / "02_generation.yaml", "generation.prompts.nmae=3"),
        r"^--set generation\.prompts\.nmae=3: unknown key 'generation\.prompts\.nmae' \(known keys: .*template",
    ),
    Case(
        "params: common.yaml is a broken link",
        params_beside_a_broken_common_link,
        r"common\.yaml: a link to .*gone/common\.yaml, which does not exist \(fix or remove the link\)",
    ),
    Case(
        "params: wrong type",
        lambda tmp_path, fixture: cli("generate", SMOKE / "02_generation.yaml", "generation.images_per_category=many"),
        r"generation\.images_per_category: expected an integer, got 'many'",
    ),
    Case(
        "params: --set without a value",
        lambda tmp_path, fixture: cli("generate", SMOKE / "02_generation.yaml", "output_dir"),
        r"--set 'output_dir': expected key=value",
    ),
    Case(
        "missing params file",
        lambda tmp_path, fixture: cli("generate", tmp_path / "nope.yaml"),
        r"params file not found: .*nope\.yaml",
    ),
    Case(
        "evaluate-results: missing ground truth",
        evaluate_results_against_missing_ground_truth,
        r"none\.json: ground truth not found",
    ),
    Case(
        "results without a segmentation, for bbox and segm metrics",
        metrics_of_results_without_segmentation,
        r"results\[0\]: no RLE segmentation",
    ),
    Case(
        "training resumed beside another run's checkpoint",
        resume_beside_another_model,
        r"run baseline in .*training/baseline holds a model but no run\.json saying how it was made; give the run a "
        r"new name, or delete its folder to retrain it",
    ),
    Case(
        "training resumed from a checkpoint of another model",
        resume_from_a_checkpoint_of_another_model,
        r"training/baseline/last\.pth: not a checkpoint of this run's model \(Error\(s\) in loading state_dict .*\); "
        r"delete it to train the run from the start",
        writes_nothing=False,
    ),
    Case(
        "generation: a mistyped count plans 10^13 images",
        generate_a_mistyped_count,
        r"generation: 2 model\(s\) x 10 categories x images_per_category 1000000000000 = 2e\+13 images, more than "
        r"generation\.max_images \(10000000\)",
    ),
    Case(
        "checkpoint of random bytes",
        evaluate_with_checkpoint(lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096))),
        r"model_final_truncated\.pth: not a readable checkpoint \(refused by torch\.load\(weights_only=True\)",
    ),
    Case(
        "torch file that is not a checkpoint of this project",
        load_checkpoint_of({"weights": torch.zeros(2)}),
        r"checkpoint\.pth: not a checkpoint of this project \(no 'model' state dict\)",
    ),
    Case(
        "checkpoint that would run code when unpickled",
        load_checkpoint_of({"model": RunsCode()}),
        r"checkpoint\.pth: not a readable checkpoint \(refused by torch\.load\(weights_only=True\): Unsupported global",
    ),
    Case(
        "detectron2 weights to download with downloads off",
        detectron2_config,
        r"MODEL\.WEIGHTS detectron2://\S+ would be downloaded and downloads are off",
    ),
    Case(
        "detectron2 config file with a python tag",
        detectron2_config_with_python_tag,
        r"d2\.yaml: could not determine a constructor for the tag .*python/object/apply:builtins\.print",
    ),
]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.description for c in CASES])
def test_bad_input_is_one_clear_error(case, tmp_path, request, capsys):
    target = case.build(tmp_path, request.getfixturevalue)
    before = files_under(tmp_path)
    if callable(target):
        with pytest.raises(InputError) as err:
            target()
        message = str(err.value)
        assert "\n" not in message and re.search(case.expected, message), message
        assert CODE_RAN not in capsys.readouterr().out
        return
    done = run_cli(*target)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if case.error_row_in is not None:  # the stage goes on, then exits 1 saying how many items failed
        manifest = tmp_path / case.error_row_in
        failed = re.findall(
            r"^\w+: (\d+) of \d+ item\(s\) failed \(first: (.*)\); their rows in (\S+) ", done.stderr, re.M
        )
        assert done.returncode == 1 and len(failed) == 1, done.stderr[-3000:]
        assert failed[0][0] == "1" and re.search(case.expected, failed[0][1]) and failed[0][2] == str(manifest)
        errors = [r for r in read_manifest(manifest) if r["status"] == "error"]
        assert len(errors) == 1 and re.search(case.expected, errors[0]["reason"]), errors
        return
    messages = re.findall(r"error: (.*)", done.stderr)  # after a progress bar's last state, if one was shown
    assert done.returncode == 2 and len(messages) == 1, done.stderr[-3000:]
    assert re.search(case.expected, messages[0]), messages[0]
    assert files_under(tmp_path) == before or not case.writes_nothing


def test_a_failed_item_fixed_before_the_rerun_ends_with_exit_status_0(tmp_path, request):
    """The route after a transient fault: the stage exits 1 naming the count, the cause is fixed (here the image is
    restored), and the rerun retries only that item and exits 0."""
    generation = request.getfixturevalue("smoke_generation")
    target = corrupt_generated_png(tmp_path, request.getfixturevalue)
    assert run_cli(*target).returncode == 1
    broken = generation.rows[0]["path"]
    shutil.copy(generation.out_dir / broken, tmp_path / "generation" / broken)
    done = run_cli(*target)
    assert done.returncode == 0 and "item(s) failed" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"\d+ already done, 1 failed before and retried", done.stderr), done.stderr[-3000:]
    assert not [r for r in read_manifest(tmp_path / "annotation/manifest.jsonl") if r["status"] == "error"]


def test_a_category_name_with_dollar_signs_is_plain_text_in_figures(tmp_path):
    """A '$' in a category name is not mathtext: an unbalanced one would stop the figure with a parse error."""
    from divergen_lib.viz import plot_category_frequency, save_figure

    name = "a_$x^$"
    fig = plot_category_frequency([{"name": name, "image_count": 3, "frequency": "r"}])
    assert [label.get_text() for label in fig.axes[0].get_xticklabels()] == [name]
    assert save_figure(fig, tmp_path / "names.png").is_file()
