"""The ablation's report: mean ± std over seeds per setting, the papers' claims checked against it, the
figure, and the README block made from them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import Claim, Setting

# (IoU type, LVIS metric) pairs of the table, in its column order
COLUMNS = [(iou, m) for m in ("AP", "APr", "APc", "APf") for iou in ("bbox", "segm")]
CLAIM_METRICS = [("bbox", "AP"), ("segm", "AP"), ("bbox", "APr"), ("segm", "APr")]
COVERAGE = ("coverage all (generated)", "coverage rare (generated)")
README_START = "<!-- ablation-table:start -->"
README_END = "<!-- ablation-table:end -->"


def column(iou: str, metric: str) -> str:
    return f"{metric} {'box' if iou == 'bbox' else 'mask'}"


def aggregate(
    settings: Sequence[Setting], results: Sequence[dict[str, Any]], data: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per setting: seeds, pool size, coverage, and mean / std over seeds (in %) of every metric."""
    rows = []
    for setting in settings:
        mine = [r for r in results if r["setting"] == setting.name]
        row: dict[str, Any] = {"setting": setting.name, "label": setting.label, "seeds": len(mine)}
        row |= data.get(setting.name, {})
        for iou, metric in COLUMNS:
            values = np.array([100 * r["metrics"][iou][metric] for r in mine], dtype=float)
            row[column(iou, metric)] = {
                "mean": float(values.mean()) if len(values) else None,
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "values": values.round(3).tolist(),
            }
        rows.append(row)
    return rows


def check_claims(rows: Sequence[dict[str, Any]], claims: Sequence[Claim]) -> list[dict[str, Any]]:
    """Per claim and metric: the difference of the means and its standard error (Welch); ``reproduced`` when the
    difference is positive by more than two standard errors, ``reversed`` when negative by more, else
    ``within noise``."""
    by_name = {r["setting"]: r for r in rows}
    checked = []
    for claim in claims:
        entry: dict[str, Any] = {"claim": claim.text, "better": claim.better, "worse": claim.worse}
        for iou, metric in CLAIM_METRICS:
            name = column(iou, metric)
            a, b = by_name[claim.better][name], by_name[claim.worse][name]
            diff = a["mean"] - b["mean"]
            se = math.sqrt(_var_of_mean(a["values"]) + _var_of_mean(b["values"]))
            verdict = "reproduced" if diff > 2 * se else "reversed" if diff < -2 * se else "within noise"
            entry[name] = {"diff": diff, "se": se, "verdict": verdict}
        checked.append(entry)
    return checked


def _var_of_mean(values: Sequence[float]) -> float:
    return float(np.var(values, ddof=1)) / len(values) if len(values) > 1 else 0.0


def _pm(cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "–"
    return f"{cell['mean']:.2f}" + (f" ± {cell['std']:.2f}" if cell["std"] is not None else "")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}"


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The ablation table in Markdown: mean ± std over seeds, LVIS metrics in %, coverage in %."""
    head = ["setting", "pool", *(column(i, m) for i, m in COLUMNS), "cov. all", "cov. rare"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], str(r.get("pool", "–"))]
        cells += [_pm(r[column(i, m)]) for i, m in COLUMNS]
        cells += [_percent(r.get(c)) for c in COVERAGE]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_markdown(checked: Sequence[dict[str, Any]], labels: dict[str, str]) -> str:
    """The claims table: each metric's difference ± standard error and the verdict."""
    head = ["paper's claim", "comparison", *(column(i, m) for i, m in CLAIM_METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in checked:
        cells = [c["claim"], f"{labels[c['better']]} vs {labels[c['worse']]}"]
        for iou, metric in CLAIM_METRICS:
            d = c[column(iou, metric)]
            cells.append(f"{d['diff']:+.2f} ± {d['se']:.2f}: {d['verdict']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_counts(checked: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many claim × metric cells are reproduced, reversed or within noise."""
    counts = {"reproduced": 0, "reversed": 0, "within noise": 0}
    for c in checked:
        for iou, metric in CLAIM_METRICS:
            counts[c[column(iou, metric)]["verdict"]] += 1
    return counts


def write_readme_block(readme: Path, block: str) -> None:
    """Replace what lies between the README's ablation markers with ``block``."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise InputError(f"{readme}: no {README_START} ... {README_END} markers to write the ablation table between")
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{block}\n{README_END}", text))
