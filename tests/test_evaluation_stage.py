"""The evaluate stage on finished smoke runs: metrics, energies, reuse of up-to-date files, figures, errors."""

from __future__ import annotations

import pytest

from divergen_lib.config import load_config
from divergen_lib.errors import InputError
from divergen_lib.evaluation import METRICS, evaluate, stage
from divergen_lib.evaluation.energy import energy, train_val_gap
from divergen_lib.evaluation.paper_results import PAPER_RESULTS, comparison_table
from divergen_lib.formats import read_results
from divergen_lib.training import stage as training_stage

from .conftest import REPO_ROOT, run_cli, smoke_training

SMOKE_EVALUATION = REPO_ROOT / "params" / "smoke" / "06_evaluation.yaml"


@pytest.fixture(scope="module")
def profile(trained, pool_world):
    """The trained pool run plus a baseline, in one output folder."""
    config, _ = trained
    world, _ = pool_world
    training_stage.run(smoke_training(config.common.output_dir, world))
    return config.common.output_dir


def evaluation_config(output_dir, *overrides):
    return load_config(SMOKE_EVALUATION, [f"output_dir={output_dir}", *overrides])


def test_energy_is_minus_tau_logsumexp():
    logits = [[0.0, 0.0], [2.0, -1.0]]
    values = energy(logits, tau=1.0)
    assert values[0] == pytest.approx(-0.693147, abs=1e-6)
    assert energy([[5.0, 5.0]], 0.9)[0] < energy([[1.0, 1.0]], 0.9)[0]  # confident -> lower energy


def test_train_val_gap_per_group():
    rows = train_val_gap({"r": [1.0, 3.0], "c": [0.0], "f": []}, {"r": [4.0], "c": [0.0, 2.0], "f": [1.0]})
    by_group = {r["group"]: r for r in rows}
    assert by_group["r"]["tvg"] == pytest.approx(2.0) and by_group["c"]["tvg"] == pytest.approx(1.0)
    assert "tvg" not in by_group["f"] and by_group["all"]["n_train"] == 3 and by_group["all"]["n_val"] == 4


def test_stage_evaluates_every_finished_run_and_reuses_its_files(profile):
    config = evaluation_config(profile)
    evaluations = stage.run(config)
    assert [ev.run.name for ev in evaluations] == ["baseline", "divergen"]
    for ev in evaluations:
        assert set(ev.metrics) == {"bbox", "segm"} and set(ev.metrics["segm"]) == set(METRICS)
        results = read_results(ev.run.out_dir / "results_val.json")
        assert results and all(r["category_id"] in ev.run.classes.truncated().category_ids for r in results)
        gap = {row["group"]: row for row in ev.energy["gap"]}
        assert gap["all"]["n_train"] > 0 and gap["all"]["n_val"] > 0 and "tvg" in gap["all"]
    stamps = [
        (ev.run.out_dir / name).stat().st_mtime_ns for ev in evaluations for name in ("metrics.json", "energy.json")
    ]
    again = stage.run(config)
    assert [(ev.run.out_dir / n).stat().st_mtime_ns for ev in again for n in ("metrics.json", "energy.json")] == stamps
    assert again[0].metrics == evaluations[0].metrics
    other_backend = stage.run(evaluation_config(profile, "evaluation.backend=lvis", "evaluation.runs=[baseline]"))
    for iou in ("bbox", "segm"):
        for key in METRICS:
            assert other_backend[0].metrics[iou][key] == pytest.approx(evaluations[0].metrics[iou][key], abs=1e-6)
    rows = stage.summarize(evaluations)
    assert {(r["run"], r["iou"]) for r in rows} == {(n, i) for n in ("baseline", "divergen") for i in ("bbox", "segm")}
    table = comparison_table(rows, with_paper=True, source="smoke")
    assert len(table) == 2 + len(PAPER_RESULTS) and table[0]["AP_box"] == rows[0]["AP"]
    assert table[0]["source"] == "smoke" and table[-1]["source"] == "DiverGen paper"
    figures = stage.save_figures(evaluations, config)
    assert set(figures) == {"metrics", "ap_vs_images", "predictions", "energy"}
    assert all(path.stat().st_size > 0 for path in figures.values())


def test_missing_runs_are_clear_errors(profile, tmp_path):
    with pytest.raises(InputError, match="no finished run"):
        evaluate.selected_runs(evaluation_config(profile, "evaluation.runs=[nope]"))
    with pytest.raises(InputError, match="notebook 05"):
        evaluate.selected_runs(evaluation_config(tmp_path))


def test_cli_evaluates_a_run(profile):
    result = run_cli(
        "evaluate",
        "--params",
        str(SMOKE_EVALUATION),
        "--set",
        f"output_dir={profile}",
        "--set",
        "evaluation.runs=[baseline]",
    )
    assert result.returncode == 0, result.stderr
