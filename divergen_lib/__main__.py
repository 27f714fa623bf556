"""Command line: ``python -m divergen_lib <stage> --params FILE [--set key=value ...]``.

Stages call the same library functions as the notebooks. ``--params`` and every other path typed here are
relative to the current directory, as in any shell; paths inside a params file and in ``--set`` values are relative
to the repository root (:mod:`.paths`). ``notebooks`` runs the numbered notebooks of a profile with papermill (what
``run_all.sh`` calls); ``evaluate-results`` evaluates any detector's LVIS results; ``predict`` draws a trained run's
detections on your own images.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import load_config
from .errors import InputError
from .paths import from_command_line
from .registry import load_target
from .stages import STAGES, ManifestResult, StageResult, failed_rows


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
    pr = sub.add_parser("predict", help="pictures and LVIS results of a trained run on your own images")
    pr.add_argument("--run", required=True, help="a training run folder, or its model_final(_truncated).pth")
    pr.add_argument("--images", required=True, help="an image file, or a folder of them")
    pr.add_argument("--out", required=True, help="folder for one PNG per image, results.json and images.json")
    pr.add_argument("--score-threshold", type=float, default=0.5, help="smallest score drawn (default 0.5)")
    pr.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default: auto")
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
    from .evaluation.metrics_file import evaluate_results_file, metrics_table
    from .formats import write_json

    workers = args.workers or available_cores()
    record = evaluate_results_file(args.gt, args.results, args.iou, args.backend, args.format, workers)
    print(metrics_table(record))
    if args.out:
        write_json(record, args.out)
        print(f"evaluate-results: metrics and per-category AP -> {args.out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .evaluation.predict import image_files, predict_images, run_to_predict_with

    run = run_to_predict_with(args.run)
    done = predict_images(run, image_files(args.images), args.out, args.score_threshold, args.device)
    shown = sum(d["score"] >= args.score_threshold for d in done.detections)
    print(f"predict: {len(done.pictures)} picture(s), {shown} detection(s) with score >= {args.score_threshold}")
    print(f"predict: pictures and {done.results.name}, {done.images.name} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
