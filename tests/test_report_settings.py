"""Figure and table settings (each section's ``report`` block) never reach a cache key or a settings digest."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from divergen_lib.ablation.stage import variants
from divergen_lib.config import load_config, settings_digest
from divergen_lib.toyworld.build import build_toyworld

from .conftest import REPO_ROOT

PARAMS = sorted(p for p in (REPO_ROOT / "params").glob("*/*.yaml") if p.name != "common.yaml")


def _changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    return f"{value}_other"


def _report_variants(section):
    """``section`` with one report setting changed, for each report setting."""
    report = section.report
    for f in dataclasses.fields(report):
        yield f.name, replace(section, report=replace(report, **{f.name: _changed(getattr(report, f.name))}))


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_report_settings_leave_every_digest_alone(path):
    config = load_config(path)
    checked = 0
    for name, section in config.sections.items():
        if not hasattr(section, "report"):
            continue
        for field, changed in _report_variants(section):
            assert settings_digest(changed) == settings_digest(section), f"{name}.report.{field} reached the digest"
            checked += 1
    assert checked, f"{path}: no section with a report block"


def test_a_method_setting_does_reach_the_digest():
    section = load_config(REPO_ROOT / "params/smoke/00_toyworld.yaml").section("toyworld")
    assert settings_digest(replace(section, n_train_images=section.n_train_images + 1)) != settings_digest(section)


def test_a_figure_setting_does_not_rebuild_the_toy_world(smoke_config, smoke_world):
    cfg = smoke_config.section("toyworld")
    before = smoke_world.json_path("train").stat().st_mtime_ns
    build_toyworld(replace(cfg, report=replace(cfg.report, examples=1)), smoke_world.root, seed=0)
    assert smoke_world.json_path("train").stat().st_mtime_ns == before


def test_figure_settings_do_not_move_the_ablations_data_folders():
    params = REPO_ROOT / "params/ablation/07_ablations.yaml"
    dirs = {n: s.dirs for n, s in variants(load_config(params)).items()}
    figures_only = ["generation.report.figure_categories=7", "annotation.report.worst_cases=9"]
    figures_only += ["filtration.report.gallery=11", "ablation.report.readme=OTHER.md"]
    assert {n: s.dirs for n, s in variants(load_config(params, figures_only)).items()} == dirs
    method = ["generation.images_per_category=9"]
    assert {n: s.dirs for n, s in variants(load_config(params, method)).items()} != dirs
