"""The ``ablate`` stage (notebook 07): DiverGen's ablations in miniature.

1. Data: every setting's generated data (generation → annotation → filtration, see :mod:`.data`) and its
   coverage of real val in the toy CLIP's space (notebook 01's k-NN coverage).
2. Runs: every setting × seed trained and evaluated with the params file's ``training`` and ``evaluation``
   sections (see :mod:`.runs`).
3. Report: ``ablation/summary.json`` (per-run metrics, per-setting mean ± std, claims checked),
   ``ablation/report.md`` (the table and the claims), ``figures/ablation.png``, and, when ``ablation.readme``
   names a file, the same Markdown between its markers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..distributed import require_single_process, resolve_device
from ..formats import read_lvis, write_json
from ..progress import progress
from ..training.config import RunSpec, TrainingConfig
from ..training.layout import RunLayout
from .config import AblationConfig
from .data import (
    VariantSections,
    coverage,
    kept_set,
    pool_statistics,
    prepare,
    real_sets,
    unavailable_settings,
    variant_sections,
)
from .layout import AblationLayout
from .report import aggregate, check_claims, claims_markdown, table_markdown, verdict_counts, write_readme_block
from .runs import RunTask, run_tasks

log = logging.getLogger(__name__)


@dataclass
class AblationRun:
    """What the stage produced: per-setting rows, per-run results, the claims checked, wall times."""

    out_dir: Path
    rows: list[dict[str, Any]] = field(repr=False)
    results: list[dict[str, Any]] = field(repr=False)
    claims: list[dict[str, Any]] = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    trained: int = 0
    readme: Path | None = None

    @property
    def summary_path(self) -> Path:
        return AblationLayout(self.out_dir).summary


def variants(config: Config) -> dict[str, VariantSections]:
    """Setting name -> the stage sections of its generated data (settings without data are left out)."""
    cfg: AblationConfig = config.section("ablation")
    root = AblationLayout(config.stage_dir("ablation")).data
    return {s.name: variant_sections(config, s.data, root) for s in cfg.settings if s.data is not None}


def prepare_data(config: Config, sections: dict[str, VariantSections]) -> dict[str, dict[str, Any]]:
    """Make every variant's data once; per setting: generated images, pool size and coverage of real val."""
    from ..clip_models import configured_clip

    cfg: AblationConfig = config.section("ablation")
    unique = {s.dirs["filtration"]: s for s in sections.values()}
    for variant in progress(list(unique.values()), desc="ablation data", unit="variant"):
        prepare(config, variant)
    filt = config.section("filtration")
    device = resolve_device(config.common.device)
    clip = configured_clip(filt.clip, filt.toy_clip, filt.real.annotations.parent, config.clip_cache_dir, device)
    train = read_lvis(config.section("training").train.annotations)
    rare_ids = [c["id"] for c in train["categories"] if c.get("frequency") == "r"]
    target_ids = {c["id"] for c in train["categories"]}
    cache = AblationLayout(config.stage_dir("ablation")).embeddings
    real = real_sets(config, clip, cache, cfg.coverage, rare_ids)
    data = {}
    for setting in cfg.settings:
        if setting.data is None:
            data[setting.name] = coverage(real, None, cfg.coverage.k)
            continue
        variant = sections[setting.name]
        kept = kept_set(variant, target_ids, clip)
        data[setting.name] = {**pool_statistics(variant), **coverage(real, kept, cfg.coverage.k)}
    return data


def tasks(config: Config, sections: dict[str, VariantSections]) -> list[RunTask]:
    """Every setting × seed, seed by seed (a partial ablation then has whole seeds)."""
    cfg: AblationConfig = config.section("ablation")
    training: TrainingConfig = config.section("training")
    evaluation = config.section("evaluation")
    device = resolve_device(config.common.device)
    runs_dir = AblationLayout(config.stage_dir("ablation")).runs
    out = []
    for seed in cfg.seeds:
        for setting in cfg.settings:
            variant = sections[setting.name] if setting.data is not None else None
            name = f"{setting.name}-s{seed}"
            spec = RunSpec(name, pool=variant.pool if variant else None, seed=seed)
            run_cfg = replace(training, categories=variant.categories if variant else None, runs=[spec])
            out.append(RunTask(setting.name, seed, run_cfg, spec, runs_dir / name, evaluation, device))
    return out


def _without_unavailable(config: Config) -> Config:
    """The config without the settings that cannot run here (one warning each) and the claims naming them."""
    cfg: AblationConfig = config.section("ablation")
    skipped = unavailable_settings(config, cfg.settings)
    for name, why in skipped.items():
        log.warning("ablation: setting %s left out: %s", name, why)
    if not skipped:
        return config
    settings = [s for s in cfg.settings if s.name not in skipped]
    claims = [c for c in cfg.claims if c.better not in skipped and c.worse not in skipped]
    return replace(config, sections={**config.sections, "ablation": replace(cfg, settings=settings, claims=claims)})


def run(config: Config) -> AblationRun:
    """Data, runs and report of every setting (reusing whatever an earlier invocation finished)."""
    require_single_process("the ablate stage")
    config = _without_unavailable(config)
    cfg: AblationConfig = config.section("ablation")
    out_dir = config.stage_dir("ablation")
    start = time.perf_counter()
    sections = variants(config)
    data = prepare_data(config, sections)
    data_done = time.perf_counter()
    todo = tasks(config, sections)
    trained = sum(not RunLayout(t.out_dir).final.is_file() for t in todo)
    results = run_tasks(todo, cfg.workers)
    seconds = {"data": data_done - start, "runs": time.perf_counter() - data_done}
    seconds["total"] = seconds["data"] + seconds["runs"]
    rows = aggregate(cfg.settings, results, data)
    claims = check_claims(rows, cfg.claims)
    run_ = AblationRun(out_dir, rows, results, claims, seconds, trained)
    summary = {"rows": rows, "runs": results, "claims": claims, "seconds": seconds, "trained": trained}
    write_json(summary, run_.summary_path, indent=1)
    report = report_markdown(run_, config)
    AblationLayout(out_dir).report.write_text(report + "\n")
    if cfg.report.readme is not None:
        write_readme_block(cfg.report.readme, report)
        run_.readme = cfg.report.readme
    return run_


def save_figures(run_: AblationRun, config: Config) -> dict[str, Path]:
    """``figures/ablation.png``."""
    from ..viz import save_figure
    from .figures import plot_ablation

    baseline = next((s.name for s in config.section("ablation").settings if s.data is None), None)
    return {"ablation": save_figure(plot_ablation(run_.rows, baseline), config.figures_dir / "ablation.png")}


def report_markdown(run_: AblationRun, config: Config) -> str:
    """The table, the claims checked and how the numbers were made, as one Markdown block."""
    cfg: AblationConfig = config.section("ablation")
    training: TrainingConfig = config.section("training")
    labels = {s.name: s.label for s in cfg.settings}
    counts = verdict_counts(run_.claims)
    solver = training.solver
    lines = [
        f"*Generated by notebook 07 from `{run_.summary_path}`: TOY WORLD, torchvision Mask R-CNN "
        f"{training.model.backbone} FPN, {solver.iterations} steps of {solver.batch_size} images, seeds "
        f"{', '.join(map(str, cfg.seeds))}; LVIS metrics (%) on the toy val split, mean ± std over seeds; pool: "
        "instances after filtration; cov.: k-NN coverage (%) of real val instances, all and rare categories, by the "
        "generated images of the pool (toy CLIP).*",
        "",
        table_markdown(run_.rows),
        "",
        "Claims, as differences of the means ± their standard error; *reproduced* / *reversed* = beyond two "
        f"standard errors: {counts['reproduced']} reproduced, {counts['reversed']} reversed, "
        f"{counts['within noise']} within noise.",
        "",
        claims_markdown(run_.claims, labels),
    ]
    return "\n".join(lines)
