"""Preflight: every missing input of a profile in one message, before any work starts."""

from __future__ import annotations

import shutil

import pytest

from divergen_lib.notebook_runner import NotebookFailure, run_notebooks
from divergen_lib.preflight import preflight, report

from .conftest import REPO_ROOT, run_cli

PAPER = sorted((REPO_ROOT / "params" / "paper").glob("0*.yaml"))


def test_paper_profile_lists_every_missing_dataset_and_weight_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.chdir(REPO_ROOT)
    missing = preflight(PAPER)
    places = [m.where for m in missing]
    assert len(places) == len(set(places))
    for expected in ("lvis/lvis_v1_train.json", "lvis/lvis_v1_val.json", "datasets/coco", "divergen/gpt_prompt"):
        assert any(p.endswith(expected) for p in places), expected
    assert any("sam_vit_h_4b8939.pth" in p for p in places)
    assert any("stable-diffusion-v1-5" in p for p in places) and any("IF-II-L" in p for p in places)
    assert not any("outputs/paper" in p for p in places)  # made by earlier notebooks, not inputs
    message = report(missing)
    assert message.startswith(f"{len(missing)} input(s) missing") and "get it:" in message

    lvis = tmp_path / "datasets" / "lvis"
    lvis.mkdir(parents=True)
    (lvis / "lvis_v1_train.json").write_text("{}")
    (tmp_path / "datasets" / "coco").mkdir()
    now = [m.where for m in preflight(PAPER)]
    assert not any(p.endswith(("lvis_v1_train.json", "datasets/coco")) for p in now)
    assert any(p.endswith("lvis_v1_val.json") for p in now)


def test_toy_profiles_need_nothing_beyond_their_own_outputs(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    for profile in ("demo", "smoke"):
        assert preflight(sorted((REPO_ROOT / "params" / profile).glob("0*.yaml"))) == []


def test_notebooks_do_not_start_when_inputs_are_missing(tmp_path):
    for folder in ("notebooks", "params"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    (tmp_path / "params" / "smoke" / "04_filtration.yaml").write_text(
        "filtration: {real: {annotations: /no/such/train.json, image_root: /no/such/images}, clip: {toy: true}}\n"
    )
    with pytest.raises(NotebookFailure, match="2 input\\(s\\) missing") as info:
        run_notebooks("smoke", root=tmp_path)
    assert "/no/such/train.json" in str(info.value) and "params/smoke/04_filtration.yaml" in str(info.value)
    assert not (tmp_path / "outputs").exists()  # no notebook ran


def test_cli_preflight_exit_status():
    ok = run_cli("preflight", "--profile", "smoke")
    assert ok.returncode == 0 and "every input" in ok.stdout


def test_detectron2_weights_that_would_be_downloaded_are_listed_unless_allowed(monkeypatch):
    pytest.importorskip("detectron2")
    from divergen_lib.config import load_config
    from divergen_lib.preflight import missing_inputs

    monkeypatch.chdir(REPO_ROOT)
    params = REPO_ROOT / "params" / "paper" / "variants" / "mask_rcnn_r50_training.yaml"
    offline = missing_inputs(load_config(params, ["training.detectron2.allow_download=false"]))
    assert any(m.what.startswith("detectron2 MODEL.WEIGHTS") and "://" in m.where for m in offline)
    assert not any(m.what.startswith("detectron2 MODEL.WEIGHTS") for m in missing_inputs(load_config(params)))


def test_paper_training_lists_the_originals_checkouts_then_their_swin_l_weights(monkeypatch):
    """The paper profile trains DiverGen's own config from the user's DiverGen and CenterNet2 checkouts."""
    pytest.importorskip("detectron2")
    from divergen_lib.config import load_config
    from divergen_lib.preflight import missing_inputs

    monkeypatch.chdir(REPO_ROOT)
    params = REPO_ROOT / "params" / "paper" / "05_training.yaml"
    absent = ["training.detectron2.project_paths=[/no/CenterNet2, /no/DiverGen]"]
    places = {m.where for m in missing_inputs(load_config(params, absent))}
    assert {"/no/CenterNet2", "/no/DiverGen"} <= places  # (its modules too, unless an earlier test imported them)
    shared = REPO_ROOT.parent / "shared" / "third_party"
    if not (shared / "DiverGen").is_dir():
        pytest.skip("the originals' snapshots (../shared) are absent")
    divergen = shared / "DiverGen" / "DiverGen"
    given = [
        f"training.detectron2.project_paths=[{shared / 'CenterNet2'}, {divergen}]",
        f"training.detectron2.config_file={divergen / 'configs' / 'DiverGen_swinL.yaml'}",
    ]
    missing = [m for m in missing_inputs(load_config(params, given)) if "detectron2" in m.what]
    assert [m.where for m in missing] == [str(divergen / "models" / "swin_large_patch4_window12_384_22k.pkl")]
