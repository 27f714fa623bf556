"""The ablation: settings -> stage sections and shared folders, coverage, the report and the README block."""

from dataclasses import replace

import numpy as np
import pytest

from divergen_lib.ablation import report
from divergen_lib.ablation.config import Claim, Setting
from divergen_lib.ablation.data import RealSets, coverage, unavailable_settings
from divergen_lib.ablation.stage import tasks, variants
from divergen_lib.analysis.stage import EmbeddedSet
from divergen_lib.config import ConfigError, load_config
from divergen_lib.errors import InputError

from .conftest import REPO_ROOT

ABLATION = REPO_ROOT / "params" / "ablation" / "07_ablations.yaml"


def test_profile_has_every_setting_of_the_issue_and_three_seeds():
    config = load_config(ABLATION)
    cfg = config.section("ablation")
    assert len(cfg.seeds) >= 3
    sections = variants(config)
    nodiv, nodiv2, full, full2 = (sections[n] for n in ("nodiv_1x", "nodiv_2x", "divergen_1x", "divergen_2x"))
    assert not nodiv.generation.categories.include_extra and nodiv.generation.prompts.attributes == 0
    assert [m.name for m in nodiv.generation.models] == ["toy_flat"]
    assert [m.name for m in full.generation.models] == ["toy_flat", "toy_soft"]
    images = {n: s.generation.images_per_category * len(s.generation.models) for n, s in sections.items()}
    assert images["nodiv_2x"] == images["divergen_2x"] == 2 * images["nodiv_1x"] == 2 * images["divergen_1x"]
    assert nodiv2.dirs["generation"] != nodiv.dirs["generation"] and full2.dirs["generation"] != full.dirs["generation"]
    # the annotation and filtration ablations reuse DiverGen 1x's generated images, and only what differs is redone
    same_images = {sections[n].dirs["generation"] for n in ("divergen_1x", "true_masks", "no_filtration", "clip_score")}
    assert len(same_images) == 1
    assert (
        sections["no_filtration"].dirs["annotation"]
        == full.dirs["annotation"]
        != sections["true_masks"].dirs["annotation"]
    )
    assert len({s.dirs["filtration"] for s in sections.values()}) == len(sections)
    assert sections["no_filtration"].filtration.clip_score.apply_to == "none"
    assert not sections["clip_score"].filtration.inter_similarity.enabled
    runs = tasks(config, sections)
    assert len(runs) == len(cfg.settings) * len(cfg.seeds)
    assert len({t.out_dir for t in runs}) == len(runs)
    baseline = next(t for t in runs if t.setting == "baseline")
    assert baseline.spec.pool is None and baseline.training.categories is None


def test_the_annotation_ablation_fuses_segmenters_by_max_clip_on_the_same_images():
    """DiverGen's annotation ablation (max CLIP vs one segmenter) and the IS-Net row: the same generated images,
    annotated by both methods and fused by max-CLIP in the filtration; left out with the reason where the IS-Net
    weights are absent."""
    config = load_config(ABLATION)
    sections = variants(config)
    fused, isnet, full = sections["max_clip"], sections["isnet_masks"], sections["divergen_1x"]
    assert fused.dirs["generation"] == isnet.dirs["generation"] == full.dirs["generation"]
    assert [m.name for m in fused.annotation.methods] == ["fallback_grabcut", "isnet"]
    assert fused.filtration.fusion == "max_clip" and fused.filtration.methods == ["fallback_grabcut", "isnet"]
    assert full.filtration.fusion == "none" and [m.method for m in isnet.annotation.methods] == ["salient_onnx"]
    gone = "annotation.methods=[{name: fallback_grabcut, method: border_fallback}, {name: isnet, method: salient_onnx, "
    gone += "checkpoint: /nonexistent/isnet.onnx, optional: true}, {name: true_mask, method: true_mask}]"
    absent = load_config(ABLATION, [gone])
    skipped = unavailable_settings(absent, absent.section("ablation").settings)
    assert set(skipped) == {"max_clip", "isnet_masks"} and "/nonexistent/isnet.onnx are missing" in skipped["max_clip"]
    if (REPO_ROOT.parent / "shared" / "models" / "isnet_quint8.onnx").is_file():
        assert not unavailable_settings(config, config.section("ablation").settings)
    with pytest.raises(ConfigError, match="max_clip fuses two or more annotation methods"):
        load_config(
            ABLATION, ["ablation.settings=[{name: a, label: a, data: {max_clip: [isnet]}}]", "ablation.claims=[]"]
        )


def test_bad_settings_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="claim .* names unknown settings"):
        load_config(ABLATION, ["ablation.claims=[{text: x, better: nope, worse: baseline}]"])
    with pytest.raises(ConfigError, match=r"ablation: models \['toy_sharp'\] not in the params file"):
        settings = "ablation.settings=[{name: a, label: a, data: {models: [toy_sharp]}}]"
        config = load_config(ABLATION, [settings, "ablation.claims=[]"])
        variants(config)
    with pytest.raises(ConfigError, match="scale must be >= 1"):
        load_config(ABLATION, ["ablation.settings=[{name: a, label: a, data: {scale: 0}}]", "ablation.claims=[]"])


def embedded(points, ids):
    return EmbeddedSet("x", np.asarray(points, float), np.asarray(ids))


def test_coverage_of_val_by_generated_and_by_train_plus_generated():
    rng = np.random.default_rng(0)
    val = rng.normal(size=(60, 4))
    ids = np.repeat([1, 2], 30)
    far = val + 50  # nowhere near val
    real = RealSets(train=embedded(far, ids), val=embedded(val, ids), rare_ids=[2])
    alone = coverage(real, None, k=3)
    assert alone["coverage all (train+generated)"] == 0.0 and alone["coverage all (generated)"] is None
    near = coverage(real, embedded(val + 1e-3, ids), k=3)
    assert near["coverage all (generated)"] == 1.0 and near["coverage rare (generated)"] == 1.0
    assert near["coverage all (train+generated)"] == 1.0


def results(setting, values):
    return [
        {
            "setting": setting,
            "seed": s,
            "metrics": {iou: {m: v / 100 for m in ("AP", "APr", "APc", "APf")} for iou in ("bbox", "segm")},
        }
        for s, v in enumerate(values)
    ]


def test_report_means_stds_and_claims():
    settings = [Setting("a", "A"), Setting("b", "B"), Setting("c", "C")]
    runs = results("a", [10, 11, 12]) + results("b", [5, 5.5, 6]) + results("c", [9, 12, 15])
    rows = report.aggregate(settings, runs, {"b": {"pool": 7, "coverage rare (generated)": 0.5}})
    assert rows[0]["AP mask"]["mean"] == pytest.approx(11) and rows[0]["AP mask"]["std"] == pytest.approx(1)
    claims = [Claim("a beats b", "a", "b"), Claim("b beats a", "b", "a"), Claim("c beats a", "c", "a")]
    checked = report.check_claims(rows, claims)
    assert [c["AP box"]["verdict"] for c in checked] == ["reproduced", "reversed", "within noise"]
    assert checked[0]["APr mask"]["diff"] == pytest.approx(5.5)
    assert report.verdict_counts(checked) == {"reproduced": 4, "reversed": 4, "within noise": 4}
    table = report.table_markdown(rows)
    assert "| B | 7 | 5.50 ± 0.50 |" in table and table.splitlines()[2].endswith("| – | – |")
    assert "+5.50 ± 0.65: reproduced" in report.claims_markdown(checked, {"a": "A", "b": "B", "c": "C"})


def test_readme_block_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nrest\n")
    report.write_readme_block(readme, "| new |")
    assert readme.read_text() == f"intro\n{report.README_START}\n| new |\n{report.README_END}\nrest\n"
    readme.write_text("no markers")
    with pytest.raises(InputError, match="no <!-- ablation-table:start -->"):
        report.write_readme_block(readme, "x")


def test_train_stage_refuses_a_params_file_without_runs():
    from divergen_lib.training import stage

    config = load_config(ABLATION)
    with pytest.raises(InputError, match="training.runs is empty"):
        stage.run(replace(config, sections={"training": config.section("training")}))
