"""Train and evaluate every (setting, seed) run of the ablation, ``workers`` at a time.

Each run is an ordinary training run (``run.json``, resumable ``last.pth``, ...) in ``ablation/runs/<run>/``,
evaluated like notebook 06 does; finished and evaluated runs are read back, not redone. On a CPU, runs in
parallel processes of one thread each get more done than one run on every core.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation.config import EvaluationConfig
from ..progress import progress
from ..training.config import RunSpec, TrainingConfig
from ..training.layout import RunLayout

PROGRESS_LOG = "progress.log"


@dataclass(frozen=True)
class RunTask:
    """One run: its setting and seed, the training settings (with the variant's category file) and folder."""

    setting: str
    seed: int
    training: TrainingConfig
    spec: RunSpec
    out_dir: Path
    evaluation: EvaluationConfig
    device: str


def run_one(task: RunTask, quiet: bool = False) -> dict[str, Any]:
    """Train (or resume, or find finished) and evaluate one run; its metrics per IoU type. ``quiet`` sends the
    progress bars to ``progress.log`` in the run's folder (parallel runs would interleave them)."""
    from ..evaluation.evaluate import evaluate_run
    from ..training.train import train_run

    task.out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if quiet:
            log = stack.enter_context(open(task.out_dir / PROGRESS_LOG, "a"))
            stack.enter_context(contextlib.redirect_stderr(log))
        output = train_run(task.training, task.spec, RunLayout(task.out_dir), task.seed, task.device)
        evaluation = evaluate_run(output, task.evaluation, task.device, task.seed)
    return {"setting": task.setting, "seed": task.seed, "run": task.spec.name, "metrics": evaluation.metrics}


def _one_thread_each(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_tasks(tasks: list[RunTask], workers: int) -> list[dict[str, Any]]:
    """Every task's metrics, in task order; ``workers`` > 1 runs them in that many spawned processes that share
    the machine's cores."""
    if workers == 1 or len(tasks) <= 1:
        return [run_one(t) for t in progress(tasks, desc="ablation runs", unit="run")]
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    results: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread_each, initargs=(threads,)) as pool:
        futures = {pool.submit(run_one, task, True): i for i, task in enumerate(tasks)}
        try:
            for future in progress(as_completed(futures), total=len(futures), desc="ablation runs", unit="run"):
                results[futures[future]] = future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # an interrupted run resumes from its last.pth
            raise
    return [results[i] for i in range(len(tasks))]
