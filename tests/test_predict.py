"""``predict``: a trained run's detections drawn on a toy val image and on a real photo, from the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from divergen_lib.__main__ import main
from divergen_lib.evaluation.figures import PICTURE_MIN_SIDE
from divergen_lib.formats import check_results, read_json, read_lvis, read_results

from .conftest import run_cli

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # a real photograph shipped by matplotlib


def user_images(folder: Path, world) -> Path:
    """A folder as a user brings it: a toy val image and a real photo (jpg, another size)."""
    folder.mkdir(parents=True)
    val = read_lvis(world.json_path("val"))["images"][0]
    shutil.copy(world.root / val["file_name"], folder / "toy.png")
    shutil.copy(PHOTO, folder / "photo.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def assert_predicts(run: Path | list[str], images: Path, out: Path) -> dict:
    """``predict`` of a run (or what the options given instead of ``--run`` name) on ``images`` writes one picture
    per image, at the image's size, and a valid results json."""
    source = ["--run", str(run)] if isinstance(run, Path) else run
    done = run_cli("predict", "--images", str(images), "--out", str(out), "--score-threshold", "0", *source)
    assert done.returncode == 0, done.stderr
    assert "2 picture(s)" in done.stdout
    listing = read_json(out / "images.json")
    assert [Path(i["file_name"]).name for i in listing["images"]] == ["photo.jpg", "toy.png"]
    results = read_results(out / "results.json")
    categories = {c["id"] for c in listing["categories"]}
    check_results(results, "segm", {1, 2}, categories)
    for info, picture in zip(listing["images"], ("photo.png", "toy.png"), strict=True):
        original = np.asarray(Image.open(info["file_name"]).convert("RGB"))
        drawn = np.asarray(Image.open(out / picture).convert("RGB"))
        scale = max(1.0, PICTURE_MIN_SIDE / max(original.shape[:2]))  # small toy images are enlarged
        assert original.shape[:2] == (info["height"], info["width"])
        assert drawn.shape == (round(info["height"] * scale), round(info["width"] * scale), 3)
        if any(r["image_id"] == info["id"] for r in results):  # threshold 0: every detection is drawn
            plain = np.asarray(Image.fromarray(original).resize(drawn.shape[1::-1], Image.Resampling.NEAREST))
            assert np.abs(drawn.astype(int) - plain).mean() > 1
    return {"results": results, "listing": listing}


def test_predict_draws_a_torchvision_run_on_a_toy_image_and_a_real_photo(trained, pool_world, tmp_path):
    _, output = trained
    world, _ = pool_world
    images = user_images(tmp_path / "mine", world)
    done = assert_predicts(output.out_dir, images, tmp_path / "pred")
    assert done["results"], "the trained run finds nothing at score 0 on either image"
    assert 1000 not in {c["id"] for c in done["listing"]["categories"]}  # the truncated checkpoint: targets only


def test_predict_with_the_full_checkpoint_names_the_extra_category_too(trained, pool_world, tmp_path):
    _, output = trained
    world, _ = pool_world
    images = user_images(tmp_path / "mine", world)
    done = run_cli(
        "predict", "--run", str(output.checkpoint), "--images", str(images / "toy.png"), "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert 1000 in {c["id"] for c in read_json(tmp_path / "images.json")["categories"]}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_run", "no such run folder or checkpoint file"),
        ("not_a_run", "not a training run (no run.json)"),
        ("other_file", "not a run folder or a final checkpoint of one"),
        ("no_images", "no image files in this folder"),
        ("missing_images", "no such file or folder"),
        ("unreadable", "unreadable image"),
        ("threshold", "must be between 0 and 1"),
    ],
)
def test_bad_predict_inputs_are_one_line(case, message, trained, tmp_path, capsys):
    _, output = trained
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    run, images, extra = str(output.out_dir), str(PHOTO), []
    if case == "no_run":
        run = str(tmp_path / "nowhere")
    elif case == "not_a_run":
        run = str(tmp_path / "empty")
    elif case == "other_file":
        run = str(output.out_dir / "classes.json")
    elif case == "no_images":
        images = str(tmp_path / "empty")
    elif case == "missing_images":
        images = str(tmp_path / "nothing.png")
    elif case == "unreadable":
        images = str(tmp_path / "bad.png")
    else:
        extra = ["--score-threshold", "1.5"]
    status = main(["predict", "--run", run, "--images", images, "--out", str(tmp_path / "out"), *extra])
    stderr = capsys.readouterr().err
    assert status == 2 and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
