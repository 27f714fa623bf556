"""Command line: ``python -m divergen_lib <stage> --params FILE [--set key=value ...]``.

Stages call the same library functions as the notebooks. ``--params`` and every other path typed here are
relative to the current directory, as in any shell; paths inside a params file and in ``--set`` values are relative
to the repository root (:mod:`.paths`). ``notebooks`` runs the numbered notebooks of a profile with papermill (what
``run_all.sh`` calls); ``evaluate-results`` evaluates any detector's LVIS results; ``predict`` draws the detections
of a trained run (``--run``) or of a detectron2 checkpoint with its config (``--weights``, ``--config-file``) on your
own images; ``truncate`` and ``evaluate-checkpoint`` take any detectron2 checkpoint, this project's or
DiverGen's/X-Paste's released ones.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import load_config
from .errors import InputError
from .paths import from_command_line
from .registry import load_target
from .stages import STAGES, ManifestResult, StageResult, failed_rows

if TYPE_CHECKING:
    from .training.config import Detectron2Settings


def _positive(text: str) -> int:
    """An integer >= 1 (argparse prints one line for anything else)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. --set toyworld.n_train_images=100 (repeatable)",
    )


# the options of a detectron2 checkpoint (evaluate-checkpoint, predict --weights), by their argparse dest
CHECKPOINT_OPTIONS = ("weights", "config_file", "ema", "truncate_to", "project_path", "project_module", "opts")


def _add_checkpoint_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """``--weights`` and ``--config-file`` (required or not) and the options that load a detectron2 checkpoint."""
    parser.add_argument("--weights", required=required, help="a checkpoint of this project or of DiverGen's/X-Paste's")
    help_config = "its detectron2 yaml (a file or a model-zoo name), e.g. DiverGen's configs/DiverGen_swinL.yaml"
    parser.add_argument("--config-file", required=required, help=help_config)
    parser.add_argument("--ema", action="store_true", help="its EMA weights (model_ema), as the originals evaluate")
    help_truncate = "keep the first N classes (DiverGen: 1203)"
    parser.add_argument("--truncate-to", type=_positive, metavar="N", help=help_truncate)
    help_paths = "checkouts put first on sys.path (CenterNet2, DiverGen or X-Paste)"
    parser.add_argument("--project-path", nargs="+", action="extend", default=[], metavar="P", help=help_paths)
    help_modules = "modules to import, module:function also called on the config (training.detectron2)"
    parser.add_argument("--project-module", nargs="+", action="extend", default=[], metavar="M", help=help_modules)
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="detectron2 config overrides")


def _detectron2_settings(args: argparse.Namespace) -> Detectron2Settings:
    """The detectron2 settings of the checkpoint options (:func:`_add_checkpoint_options`)."""
    from .training.config import Detectron2Settings

    config_file = args.config_file
    return Detectron2Settings(
        config_file=str(from_command_line(config_file)) if Path(config_file).exists() else config_file,
        opts=list(args.opts),
        project_modules=list(args.project_module),
        project_paths=[from_command_line(p) for p in args.project_path],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m divergen_lib", description=(__doc__ or "").partition("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        stage = sub.add_parser(name, help=f"run the {name} stage (notebook {STAGES.get(name).notebook})")
        stage.add_argument("--params", required=True, help="params YAML, e.g. params/demo/00_toyworld.yaml")
        _add_overrides(stage)
        stage.add_argument("--figures", action="store_true", help="also save the figures the notebook shows")
    nbs = sub.add_parser("notebooks", help="run the numbered notebooks of a profile with papermill")
    nbs.add_argument("--profile", default="demo")
    _add_overrides(nbs)
    group = nbs.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="NN", help="run only notebook NN")
    group.add_argument("--from", dest="start", metavar="NN", help="run notebooks NN and later")
    pre = sub.add_parser("preflight", help="list every missing dataset, weight and package of a profile's notebooks")
    pre.add_argument("--profile", default="demo")
    _add_overrides(pre)
    group = pre.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="NN", help="check only notebook NN")
    group.add_argument("--from", dest="start", metavar="NN", help="check notebooks NN and later")
    ev = sub.add_parser("evaluate-results", help="LVIS metrics of any detector's results json (no params file)")
    ev.add_argument("--gt", required=True, help="ground truth, e.g. lvis_v1_val.json or instances_val2017.json")
    ev.add_argument("--results", required=True, help="results json (e.g. detectron2's lvis_instances_results.json)")
    ev.add_argument("--format", choices=("lvis", "coco"), default="lvis", help="of the ground truth (default lvis)")
    ev.add_argument("--iou", nargs="+", choices=("bbox", "segm"), default=["bbox", "segm"], help="IoU types")
    backends = ("fast", "lvis", "pycocotools")
    help_backend = "faster-coco-eval (default) or the reference: lvis-api (LVIS), pycocotools (COCO)"
    ev.add_argument("--backend", choices=backends, default="fast", help=help_backend)
    ev.add_argument("--out", help="also write the metrics and per-category AP to this json")
    ev.add_argument(
        "--workers", type=_positive, help="processes of the fast LVIS backend (default: the cores available)"
    )
    pr = sub.add_parser("predict", help="pictures and LVIS results of a run or detectron2 checkpoint on your images")
    pr.add_argument("--run", help="a training run folder, or its model_final(_truncated).pth")
    _add_checkpoint_options(pr, required=False)
    help_categories = "with --weights, for a checkpoint without class names: lvis_v1_val.json or a categories json"
    pr.add_argument("--categories", help=help_categories)
    pr.add_argument("--images", required=True, help="an image file, or a folder of them")
    pr.add_argument("--out", required=True, help="folder for one PNG per image, results.json and images.json")
    pr.add_argument("--score-threshold", type=float, default=0.5, help="smallest score drawn (default 0.5)")
    pr.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default: auto")
    tr = sub.add_parser("truncate", help="keep the first N classes of a detectron2 checkpoint (either layout)")
    tr.add_argument("--weights", required=True, help="a checkpoint of this project or of DiverGen's/X-Paste's")
    tr.add_argument("--out", required=True, help="the truncated checkpoint (written atomically)")
    tr.add_argument("--keep", required=True, type=_positive, help="classes kept, e.g. 1203 of DiverGen's 1453")
    ec = sub.add_parser("evaluate-checkpoint", help="LVIS metrics of a detectron2 checkpoint (either layout)")
    _add_checkpoint_options(ec, required=True)
    ec.add_argument("--gt", required=True, help="LVIS ground truth, e.g. lvis_v1_val.json")
    ec.add_argument("--image-root", required=True, help="the folder its images are under (e.g. coco/)")
    ec.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default: auto")
    ec.add_argument("--max-images", type=_positive, metavar="K", help="only the first K images (default: all)")
    ec.add_argument("--out", help="also write the metrics and per-category AP to this json")
    ec.add_argument("--results", help="also write the LVIS results to this json (evaluate-results reads it)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    try:
        if args.command == "notebooks":
            from .notebook_runner import NotebookFailure, run_notebooks

            try:
                run_notebooks(args.profile, args.only, args.start, overrides=args.overrides)
            except NotebookFailure as failure:
                print(failure, file=sys.stderr)
                return 1
            return 0
        if args.command == "preflight":
            from .notebook_runner import check_inputs, plan
            from .preflight import report

            missing = check_inputs(plan(args.profile, args.only, args.start, overrides=args.overrides))
            print(report(missing) if missing else f"preflight: every input of profile {args.profile} is present")
            return 1 if missing else 0
        if args.command == "evaluate-results":
            return _evaluate_results(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "truncate":
            return _truncate(args)
        if args.command == "evaluate-checkpoint":
            return _evaluate_checkpoint(args)
        stage = STAGES.get(args.command)
        config = load_config(from_command_line(args.params), args.overrides)
        result = load_target(stage.run)(config)
        print(f"{args.command}: done -> {result.out_dir}")
        if args.figures:
            for path in load_target(stage.figures)(result, config).values():
                print(f"{args.command}: figure -> {path}")
        return _report_failed(args.command, result)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _report_failed(command: str, result: StageResult) -> int:
    """Exit status 1 and one line when items failed (their manifest rows say why; a rerun retries them)."""
    failed = failed_rows(result)
    if not failed or not isinstance(result, ManifestResult):
        return 0
    print(
        f"{command}: {len(failed)} of {len(result.rows or [])} item(s) failed (first: {failed[0].get('reason')}); "
        f"their rows in {result.manifest_path} say why, and a rerun retries them",
        file=sys.stderr,
    )
    return 1


def _evaluate_results(args: argparse.Namespace) -> int:
    from .distributed import available_cores
    from .evaluation.metrics_file import evaluate_results_file

    workers = args.workers or available_cores()
    record = evaluate_results_file(args.gt, args.results, args.iou, args.backend, args.format, workers)
    _print_metrics("evaluate-results", record, args.out)
    return 0


def _print_metrics(command: str, record: dict, out: str | None) -> None:
    """The LVIS table of a metrics record, and the record written to ``out`` when given."""
    from .evaluation.metrics_file import metrics_table
    from .formats import write_json

    print(metrics_table(record))
    if out:
        write_json(record, out)
        print(f"{command}: metrics and per-category AP -> {out}")


def _truncate(args: argparse.Namespace) -> int:
    from .training.detectron2_engine.original_checkpoints import truncate_file

    src, dst = from_command_line(args.weights), from_command_line(args.out)
    num_classes, keys = truncate_file(src, dst, args.keep)
    print(f"truncate: {num_classes} -> {args.keep} classes ({', '.join(keys)}) -> {dst}")
    return 0


def _evaluate_checkpoint(args: argparse.Namespace) -> int:
    from .distributed import available_cores
    from .evaluation.checkpoint import evaluate_checkpoint, published_comparison

    settings = _detectron2_settings(args)
    weights, gt, image_root = (from_command_line(p) for p in (args.weights, args.gt, args.image_root))
    ema = True if args.ema else None
    results = from_command_line(args.results) if args.results else None
    record = evaluate_checkpoint(
        weights,
        settings,
        gt,
        image_root,
        ema,
        args.truncate_to,
        args.device,
        args.max_images,
        available_cores(),
        results,
    )
    print(f"evaluate-checkpoint: the {record['weights']} weights of {weights} on {record['images']} image(s)")
    if results:
        print(f"evaluate-checkpoint: LVIS results -> {results}")
    _print_metrics("evaluate-checkpoint", record, args.out)
    if "published" in record:
        print(published_comparison(record))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .evaluation.predict import (
        checkpoint_predictor,
        image_files,
        predict_images,
        run_predictor,
        run_to_predict_with,
    )

    if (args.run is None) == (args.weights is None):
        raise InputError("predict: give one of --run (a training run) and --weights (a detectron2 checkpoint)")
    if args.run is not None:
        given = [f"--{o.replace('_', '-')}" for o in (*CHECKPOINT_OPTIONS, "categories") if getattr(args, o)]
        if given:
            raise InputError(f"predict --run: {', '.join(given)} go with --weights, not --run")
        predictor = run_predictor(run_to_predict_with(args.run))
    elif args.config_file is None:
        raise InputError("predict --weights: give its detectron2 yaml too (--config-file)")
    else:
        categories = from_command_line(args.categories) if args.categories else None
        weights, ema = from_command_line(args.weights), True if args.ema else None
        predictor = checkpoint_predictor(weights, _detectron2_settings(args), categories, ema, args.truncate_to)
    done = predict_images(predictor, image_files(args.images), args.out, args.score_threshold, args.device)
    shown = sum(d["score"] >= args.score_threshold for d in done.detections)
    print(f"predict: {len(done.pictures)} picture(s), {shown} detection(s) with score >= {args.score_threshold}")
    print(f"predict: pictures and {done.results.name}, {done.images.name} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
