"""Run the numbered notebooks of a profile headlessly with papermill, stopping at the first failure."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import load_config
from .paths import REPO_ROOT, for_display
from .preflight import Missing, preflight, report
from .progress import PROGRESS_ENV, TEXT
from .stages import stage_of_notebook

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")


class NotebookFailure(RuntimeError):
    """A notebook raised; the message names the notebook, the failing cell and the executed copy."""


@dataclass(frozen=True)
class NotebookJob:
    number: str
    notebook: Path
    params: Path
    output: Path
    overrides: tuple[str, ...] = ()


def plan(
    profile: str,
    only: str | None = None,
    start: str | None = None,
    root: Path = REPO_ROOT,
    overrides: Sequence[str] = (),
) -> list[NotebookJob]:
    """The notebooks to run, in numeric order, each with its params file ``params/<profile>/<stem>.yaml`` and the
    ``--set`` overrides given to every one; executed copies go to ``<output_dir>/notebooks/``.

    A notebook without a params file in the profile is not part of that profile.
    """
    params_dir = root / "params" / profile
    if not params_dir.is_dir():
        known = sorted(p.name for p in (root / "params").iterdir() if p.is_dir())
        raise SystemExit(f"unknown profile {profile!r}: no folder params/{profile}/ (profiles: {', '.join(known)})")
    jobs = []
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        match = NOTEBOOK_PATTERN.match(nb.name)
        if not match:
            continue
        number = match.group(1)
        if (only is not None and number != only.zfill(2)) or (start is not None and number < start.zfill(2)):
            continue
        params = params_dir / f"{nb.stem}.yaml"
        if params.is_file():
            output_dir = load_config(params, overrides).common.output_dir
            jobs.append(NotebookJob(number, nb, params, output_dir / "notebooks" / nb.name, tuple(overrides)))
    if not jobs:
        what = f"notebook {only}" if only else f"notebooks from {start}" if start else "notebooks"
        raise SystemExit(f"no {what} with a params file in params/{profile}/")
    return jobs


def _describe_failure(job: NotebookJob, err: Exception, root: Path) -> str:
    cell = getattr(err, "cell_index", None)
    count = getattr(err, "exec_count", None)
    where = f"cell {cell}" + (f" (execution count {count})" if count is not None else "") if cell is not None else "?"
    what = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
    message = (
        f"FAILED {job.notebook.relative_to(root)} at {where}: {what}\n  executed copy with the traceback: {job.output}"
    )
    stage = stage_of_notebook(job.notebook.stem)
    if stage is not None:
        sets = "".join(f" --set {o}" for o in job.overrides)
        command = f"python -m divergen_lib {stage.verb} --params {for_display(job.params)}{sets}"
        message += f"\n  the same stage without the notebook: {command}"
    return message


def check_inputs(jobs: list[NotebookJob]) -> list[Missing]:
    """Every input the jobs' params files need that is missing (see :mod:`.preflight`)."""
    overrides = jobs[0].overrides if jobs else ()
    return preflight([Path(for_display(job.params)) for job in jobs], overrides)


@contextlib.contextmanager
def _text_progress() -> Iterator[None]:
    """Kernels started inside print text progress bars (:mod:`.progress`) unless ``DIVERGEN_PROGRESS`` is set."""
    if PROGRESS_ENV in os.environ:
        yield
        return
    os.environ[PROGRESS_ENV] = TEXT
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_ENV, None)


def run_notebooks(
    profile: str,
    only: str | None = None,
    start: str | None = None,
    root: Path = REPO_ROOT,
    overrides: Sequence[str] = (),
) -> None:
    """Check the inputs of every planned notebook (:mod:`.preflight`), then execute them in order with
    ``overrides``, printing wall times; raise NotebookFailure listing every missing input, or on the first error."""
    jobs = plan(profile, only, start, root, overrides)
    missing = check_inputs(jobs)
    if missing:
        raise NotebookFailure(report(missing))
    total = time.perf_counter()
    with _text_progress():
        for job in jobs:
            _execute(job, profile, root)
    print(f"[{profile}] {len(jobs)} notebook(s) in {time.perf_counter() - total:.1f} s", flush=True)


def _execute(job: NotebookJob, profile: str, root: Path) -> None:
    """Run one notebook with papermill in its own folder (where a Jupyter kernel starts), printing its wall time."""
    import papermill as pm

    job.output.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{profile}] {job.notebook.name} with {for_display(job.params)} ...", flush=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(job.notebook),
            str(job.output),
            parameters={"params_file": for_display(job.params), "overrides": list(job.overrides)},
            cwd=str(job.notebook.parent),  # where a Jupyter kernel starts
            kernel_name="python3",
            progress_bar=False,
        )
    except Exception as err:  # papermill wraps cell errors in PapermillExecutionError
        raise NotebookFailure(_describe_failure(job, err, root)) from None
    print(f"[{profile}] {job.notebook.name} done in {time.perf_counter() - t0:.1f} s -> {job.output}", flush=True)
