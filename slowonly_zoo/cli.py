"""``slowonly-zoo`` (also ``python -m slowonly_zoo``): the command line. It parses arguments and prints; the work is
done by :mod:`slowonly_zoo.inference`, :mod:`slowonly_zoo.features`, :mod:`slowonly_zoo.benchmark`,
:mod:`slowonly_zoo.evaluation` and :mod:`slowonly_zoo.weights.transfer`.

Exit codes: 0 success, 1 user error (unknown model, unreadable video, missing weights, bad option, ...; one readable
sentence on stderr, the traceback only with ``--debug``), 2 ``verify`` ran but the measured numbers do not match the
reported ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXIT_OK", "EXIT_USER_ERROR", "EXIT_VERIFY_FAILED", "build_parser", "main"]

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_VERIFY_FAILED = 2

_DATASET_ALIASES = {
    "k400": "kinetics400",
    "k600": "kinetics600",
    "k700": "kinetics700",
    "ssv1": "somethingsomethingv1",
    "sthv1": "somethingsomethingv1",
    "gym": "gym99",
}


class CLIError(Exception):
    """A user error found by the CLI itself (exit 1)."""


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _json(obj: Any) -> None:
    _out(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


# --------------------------------------------------------------------------------------------------
# list / info
# --------------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _dataset_matches(entry: Any, wanted: str) -> bool:
    key = _norm(wanted)
    key = _DATASET_ALIASES.get(key, key)
    return key in _norm(entry.dataset)


def _cache_status(entry: Any) -> bool | None:
    """True / False whether the verified weights are in the cache; None when that cannot be told."""
    try:
        from .index import get_model_info
        from .weights.cache import check_cached
        from .weights.sources import accepted_prefixes
    except ImportError:
        return None
    if entry.members:
        states = [_cache_status(get_model_info(m)) for m in entry.members]
        return None if None in states else all(states)
    if entry.checkpoint is None:
        return None
    try:
        return check_cached(entry.name, source_sha256_prefixes=accepted_prefixes(entry)).ok
    except Exception:  # noqa: BLE001 - a damaged cache must not break `list`
        return False


def _protocol_text(entry: Any) -> str:
    if entry.members:
        return "fusion of " + " + ".join(m.rsplit("_", 1)[-1] for m in entry.members)
    p = entry.protocol
    if p is None:
        return "-"
    crop = f"{p.num_crops} crop{'s' if p.num_crops > 1 else ''}"
    return f"{p.clip_len}x{p.frame_interval}, {p.num_clips} clips x {crop} {p.crop_size}px"


def _fmt_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(entry: Any, cached: bool | None) -> dict[str, Any]:
    r = entry.primary_result
    return {
        "name": entry.name,
        "dataset": entry.dataset,
        "modality": entry.architecture.modality if entry.architecture else "rgb+flow",
        "num_classes": entry.num_classes,
        "top1": r.top1 if r else None,
        "top5": r.top5 if r else None,
        "mean_class_accuracy": r.mean_class_accuracy if r else None,
        "params": entry.params,
        "protocol": _protocol_text(entry),
        "num_views": entry.protocol.num_views if entry.protocol else None,
        "cached": cached,
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cmd_list(args: argparse.Namespace) -> int:
    from .index import get_model_info, list_models

    entries = [get_model_info(n) for n in list_models(args.pattern)]
    if args.dataset:
        entries = [e for e in entries if _dataset_matches(e, args.dataset)]
    if args.modality:
        entries = [e for e in entries if e.architecture is not None and e.architecture.modality == args.modality]
    rows = [_row(e, _cache_status(e)) for e in entries]
    if args.json:
        _json(rows)
        return EXIT_OK
    if not rows:
        _err("no model matches these filters; `slowonly-zoo list` shows every model")
        return EXIT_USER_ERROR
    cells = [
        [
            r["name"],
            r["dataset"],
            _fmt_num(r["top1"]),
            _fmt_num(r["top5"])
            if r["top5"] is not None or r["mean_class_accuracy"] is None
            else _fmt_num(r["mean_class_accuracy"]) + "*",
            "-" if r["params"] is None else f"{r['params'] / 1e6:.1f}M",
            r["protocol"],
            {True: "yes", False: "no", None: "?"}[r["cached"]],
        ]
        for r in rows
    ]
    _out(_table(["name", "dataset", "top-1", "top-5", "params", "test protocol", "cached"], cells, {2, 3, 4}))
    if any(r["top5"] is None and r["mean_class_accuracy"] is not None for r in rows):
        _out("* mean class accuracy (upstream reports top-1 and mean class accuracy for these models)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .index import get_model_info

    entry = get_model_info(args.name)
    cached = _cache_status(entry)
    if args.json:
        data = entry.to_dict()
        data["cached"] = cached
        data["num_labels"] = len(entry.labels)
        _json(data)
        return EXIT_OK
    lines = [entry.name, "=" * len(entry.name)]

    def add(key: str, value: Any) -> None:
        if value not in (None, "", (), []):
            lines.append(f"{key + ':':<18}{value}")

    add("aliases", ", ".join(entry.aliases))
    add("config", entry.config)
    add("collection", entry.collection)
    add("dataset", entry.dataset)
    labels = entry.labels
    add("classes", f"{entry.num_classes}" + (f" ({len(labels)} named)" if len(labels) != entry.num_classes else ""))
    add("training data", entry.training_data)
    add("pretrained on", entry.pretrain)
    add("train resolution", entry.train_resolution)
    add("epochs", entry.epochs)
    add("parameters", f"{entry.params:,}" if entry.params else None)
    if entry.members:
        add("members", ", ".join(f"{m} (weight {w})" for m, w in zip(entry.members, entry.member_weights or ())))
    a = entry.architecture
    if a is not None:
        add(
            "architecture",
            f"ResNet{a.depth} SlowOnly{' + non-local' if a.non_local else ''}, {a.modality} "
            f"({a.in_channels} input channels), clip {a.clip_len}x{a.frame_interval}"
            f"{'' if a.with_pool1 else ', no stem max-pool'}",
        )
    p = entry.protocol
    if p is not None:
        lines.append("test protocol:")
        lines.append(
            f"  data            {p.data_format}"
            + (f" ({p.filename_tmpl}, frames numbered from {p.start_index})" if p.filename_tmpl else "")
        )
        lines.append(
            f"  sampling        {p.num_clips} clips of {p.clip_len} frames every {p.frame_interval} "
            "(SampleFrames test_mode, mmaction2 0.x)"
        )
        lines.append(
            "  resize          "
            + (f"short side to {p.resize_short}" if p.resize_short else "none (test videos stored at short side 256)")
        )
        lines.append(f"  crop            {'ThreeCrop' if p.crop == 'three' else 'CenterCrop'}({p.crop_size})")
        lines.append(f"  normalise       {p.normalize}: mean {list(p.mean)}, std {list(p.std)}")
        lines.append(
            f"  views           {p.num_views} per video, scores: softmax per view then mean "
            f"(average_clips={p.average_clips!r})"
        )
    for r in entry.results:
        metrics = ", ".join(
            f"{k} {v:.2f}"
            for k, v in (("top-1", r.top1), ("top-5", r.top5), ("mean class", r.mean_class_accuracy))
            if v is not None
        )
        speed = f", {r.inference_time} video/s" if r.inference_time else ""
        lines.append(f"reported:         {metrics}{speed}  [{r.source}]")
    ck = entry.checkpoint
    if ck is not None:
        add("checkpoint", ck.url)
        add("sha256 prefix", ck.sha256_prefix)
        add("previous names", ", ".join(ck.previous_filenames))
        add("hf hub", ck.hf_hub_id)
    add("weights cached", {True: "yes", False: "no", None: "?"}[cached])
    _out("\n".join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# predict / extract / benchmark
# --------------------------------------------------------------------------------------------------


def _check_clips(args: argparse.Namespace) -> None:
    if getattr(args, "clips", None) is not None and args.clips < 1:
        raise CLIError(f"--clips must be 1 or more, got {args.clips}")


def _check_inputs(name: str, videos: Sequence[Path]) -> None:
    """Refuse unusable inputs (missing, RGB video for a flow model) before any weights are fetched."""
    from .index import get_model_info
    from .inference import check_source

    entry = get_model_info(name)
    if not entry.is_ensemble:
        for video in videos:
            check_source(entry, video)


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import Predictor, expand_inputs

    _check_clips(args)
    if args.topk < 1:
        raise CLIError(f"--topk must be 1 or more, got {args.topk}")
    videos = expand_inputs(args.videos)
    _check_inputs(args.name, videos)
    predictor = Predictor(
        args.name, checkpoint=args.checkpoint, clips=args.clips, device=args.device, batch_views=args.batch_views
    )
    results: list[dict[str, Any]] = []
    failures = 0
    for video in videos:
        try:
            pred = predictor.predict_one(video, args.topk)
        except (OSError, RuntimeError, ValueError) as exc:  # unreadable input: report it, go on with the rest
            failures += 1
            results.append({"video": str(video), "error": str(exc)})
            if not args.json:
                _err(f"error: {exc}")
            if args.debug:
                raise
            continue
        results.append(pred.to_dict())
        if not args.json:
            _out(
                f"{video}  ({predictor.entry.name}, {pred.num_views} view{'s' if pred.num_views > 1 else ''}, "
                f"{pred.seconds:.1f} s)"
            )
            for rank, c in enumerate(pred.topk, 1):
                label = c.label if c.label is not None else f"<unnamed output {c.index}>"
                _out(f"  {rank:>2}. {c.prob:7.4f}  {label}  [{c.index}]")
            if pred.unlabelled_prob:
                _out(
                    f"      ({pred.unlabelled_prob:.4f} on the {predictor.entry.num_classes - len(predictor.labels)}"
                    " unnamed head outputs)"
                )
    if args.json:
        _json(results)
    return EXIT_USER_ERROR if failures else EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    from .features import extract
    from .inference import expand_inputs

    _check_clips(args)
    videos = expand_inputs(args.videos, root=args.root)
    _check_inputs(args.name, videos[:1])  # the modality check, before fetching weights; others are checked per input

    def on_progress(source: str, status: str, detail: str) -> None:
        if args.json:
            return
        if status == "failed":
            _err(f"failed   {source}: {detail}")
        else:
            _out(f"{'wrote' if status == 'written' else 'exists':<8} {detail}")

    summary = extract(
        args.name,
        videos,
        args.out,
        checkpoint=args.checkpoint,
        layer=args.layer,
        clip_stride=args.clip_stride,
        clips=args.clips,
        fmt=args.format,
        device=args.device,
        batch_views=args.batch_views,
        overwrite=args.overwrite,
        on_progress=on_progress,
    )
    shard = f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else ""
    if args.json:
        _json(
            {
                "written": [str(p) for p in summary.written],
                "skipped": [str(p) for p in summary.skipped],
                "failed": [{"video": v, "error": e} for v, e in summary.failed],
                "rank": summary.rank,
                "world_size": summary.world_size,
                "seconds": round(summary.seconds, 3),
            }
        )
    else:
        _out(
            f"{len(summary.written)} written, {len(summary.skipped)} already there, {len(summary.failed)} failed"
            f"{shard}; features in {args.out}"
        )
    return EXIT_USER_ERROR if summary.failed else EXIT_OK


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import benchmark

    _check_clips(args)
    say: Callable[[str], None] | None = None if args.json else (lambda m: _err(f"  {m}"))
    result = benchmark(
        args.name,
        device=args.device,
        iters=args.iters,
        warmup=args.warmup,
        clips=args.clips,
        crop_size=args.crop_size,
        video=args.video,
        e2e_iters=args.e2e_iters,
        fuse_bn=args.fuse_bn,
        progress=say,
    )
    if args.json:
        _json(result)
        return EXIT_OK
    _out(f"model           {result['model']} ({result['weights']})")
    _out(
        f"device          {result['device']}: {result['device_name']} (torch {result['torch']}, "
        f"{result['threads']} CPU threads)"
    )
    _out(
        f"settings        batch 1 video = {result['views_per_video']} views of {tuple(result['input_per_view'])}, "
        f"{result['iters']} iterations, first {result['warmup']} not timed, fuse BN {result['fuse_bn']}"
        + ("" if result["upstream_setting"] else "  [NOT upstream's test views: --clips/--crop-size given]")
    )
    _out(
        f"model only      {result['model_videos_per_second']:.3f} videos/s "
        f"({result['model_seconds_per_video']:.3f} s per video; forward + prob averaging, no decoding)"
    )
    if result.get("reported_videos_per_second"):
        _out(f"reported        {result['reported_videos_per_second']} videos/s (upstream README, GPU not stated)")
    e2e = result.get("end_to_end")
    if e2e:
        _out(
            f"end to end      {e2e['videos_per_second']:.3f} videos/s over {e2e['iters']} runs on {e2e['video']} "
            f"(decode + pipeline {e2e['data_seconds_per_video']:.3f} s per video)"
        )
    elif result.get("end_to_end_note"):
        _out(f"end to end      skipped: {result['end_to_end_note']}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# verify / fuse
# --------------------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from .evaluation import verify

    checkpoint: Any = None
    if args.checkpoint:
        checkpoint = args.checkpoint[0] if len(args.checkpoint) == 1 else list(args.checkpoint)
    result = verify(
        args.name,
        args.data_root,
        args.ann_file,
        checkpoint=checkpoint,
        fmt=args.format,
        out=args.out,
        num_workers=args.num_workers,
        batch_views=args.batch_views,
        device=args.device,
        limit=args.limit,
        strict=args.strict,
        amp=args.amp,
        sampling=args.sampling,
        tolerance=args.tolerance,
        progress=not args.no_progress,
        print_fn=None if args.json else _out,
        compile=args.compile,
    )
    if args.json and result.report is not None:
        _json(result.report)
    return EXIT_VERIFY_FAILED if result.verdict == "failed" else EXIT_OK


def cmd_fuse(args: argparse.Namespace) -> int:
    from .evaluation import compute_metrics, fuse_files

    weights = None
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError as exc:
            raise CLIError(f"--weights must be comma-separated numbers like 1,1 (got {args.weights!r})") from exc
        if len(weights) != len(args.scores):
            raise CLIError(f"--weights has {len(weights)} numbers for {len(args.scores)} score files")
    table = fuse_files(args.scores, args.out, weights=weights, allow_partial=args.allow_partial)
    metrics = compute_metrics(table.scores, table.labels) if len(table.ids) else None
    report = {
        "inputs": [str(p) for p in args.scores],
        "weights": weights or [1.0] * len(args.scores),
        "videos": len(table.ids),
        "failed": len(table.failed_ids),
        "metrics": metrics,
        "out": args.out,
    }
    if args.json:
        _json(report)
        return EXIT_OK
    _out(
        f"fused {len(args.scores)} score files ({', '.join(str(w) for w in report['weights'])}) over "
        f"{report['videos']} videos ({report['failed']} failed in some input)"
    )
    if metrics:
        _out("  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    if args.out:
        _out(f"fused scores written to {args.out}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# import / download / export
# --------------------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from .weights.transfer import import_files

    results = import_files(args.paths)
    if not results:
        raise CLIError(f"no .pth or .safetensors files found in {', '.join(args.paths)}")
    if args.json:
        _json(
            [
                {
                    "path": str(r.path),
                    "status": r.status,
                    "names": list(r.names),
                    "sha256": r.sha256,
                    "message": r.message,
                }
                for r in results
            ]
        )
    else:
        for r in results:
            _out(str(r))
    return EXIT_OK if all(r.ok for r in results) else EXIT_USER_ERROR


def cmd_download(args: argparse.Namespace) -> int:
    from .weights.transfer import download

    if not args.names and not args.all:
        raise CLIError("name at least one model (see `slowonly-zoo list`) or pass --all")
    if args.names and args.all:
        raise CLIError("pass model names or --all, not both")
    reports = download(None if args.all else args.names, verify=args.verify, progress=False if args.json else None)
    if args.json:
        _json(
            [
                {
                    "name": r.name,
                    "status": r.status,
                    "path": None if r.path is None else str(r.path),
                    "source": r.source,
                    "message": r.message,
                }
                for r in reports
            ]
        )
    else:
        for r in reports:
            (_out if r.ok else _err)(str(r))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_USER_ERROR


def cmd_export(args: argparse.Namespace) -> int:
    from .weights.transfer import export

    result = export(args.name, args.out, args.weights)
    if args.json:
        _json(
            {
                "out_dir": str(result.out_dir),
                "weights": str(result.weights),
                "config": str(result.config),
                "readme": str(result.readme),
                "source_sha256": result.source_sha256,
            }
        )
    else:
        _out(
            f"exported {args.name} to {result.out_dir}: {result.weights.name}, {result.config.name}, "
            f"{result.readme.name} (source sha256 {result.source_sha256[:12]}…)"
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser, *, json_help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors")


def _add_model_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name or alias (see `slowonly-zoo list`)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="local upstream .pth, .safetensors or export folder instead of the released weights",
    )
    p.add_argument(
        "--clips",
        type=int,
        metavar="N",
        help="N clips with one centre crop (1 = fast single-view mode); default: the model's full test "
        "protocol (e.g. 10 clips x 3 crops)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the GPU if there is one)")
    p.add_argument(
        "--batch-views",
        type=int,
        default=30,
        metavar="N",
        help="most views per forward pass on a GPU (default 30); on CPU one view per pass is faster",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``slowonly-zoo`` (every subcommand)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="slowonly-zoo",
        description="mmaction2's SlowOnly video models in plain PyTorch: list them, classify videos, extract "
        "features, fetch and verify weights, reproduce the reported accuracy.",
        epilog="Exit codes: 0 ok, 1 user error, 2 verification failed. `slowonly-zoo COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"slowonly-zoo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="the models, with accuracy, size, test protocol and cache state")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. '*k400*'")
    p.add_argument("--dataset", help="only this dataset (e.g. kinetics-400, k400, gym99, ucf101)")
    p.add_argument("--modality", choices=("rgb", "flow"), help="only RGB or only optical-flow models")
    _add_common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="everything the index knows about one model")
    p.add_argument("name", help="model name or alias")
    _add_common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="classify video files or frame folders")
    _add_model_input(p)
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files (any format PyAV reads), frame folders, folders of videos or .txt lists",
    )
    p.add_argument("--topk", type=int, default=5, help="classes to show per video (default 5)")
    _add_common(p, json_help='print a JSON list of {"video", "topk": [{"index", "label", "prob"}]}')
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("extract", help="save features per video (.safetensors or .npy); resumable, torchrun-aware")
    _add_model_input(p)
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO_OR_LIST",
        help="video files, frame folders, folders of videos, or .txt lists (one path per line)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (mirrors the inputs' layout)")
    p.add_argument(
        "--layer",
        choices=("pool", "layer4"),
        default="pool",
        help="pool: the 2048-d clip embedding (default); layer4: the last feature maps per view",
    )
    p.add_argument(
        "--clip-stride",
        type=int,
        metavar="S",
        help="one feature per sliding-window clip starting every S frames (centre crop); default: one "
        "feature per video averaged over the test views",
    )
    p.add_argument("--format", choices=("safetensors", "npy"), default="safetensors", help="output file format")
    p.add_argument("--root", metavar="DIR", help="folder that relative paths in list files are relative to")
    p.add_argument("--overwrite", action="store_true", help="recompute outputs that exist (default: skip them)")
    _add_common(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("benchmark", help="model-only videos/s as upstream measures it, plus end-to-end videos/s")
    p.add_argument("name", help="model name or alias (random weights, as upstream's benchmark)")
    p.add_argument("--device", help="cpu, cuda, ... (default: the GPU if there is one)")
    p.add_argument("--iters", type=int, help="iterations incl. warm-up (default: 200 on GPU as upstream, 10 on CPU)")
    p.add_argument("--warmup", type=int, default=5, help="untimed first iterations (default 5, as upstream)")
    p.add_argument("--clips", type=int, metavar="N", help="time N clips x 1 centre crop instead of the test views")
    p.add_argument("--crop-size", type=int, metavar="PX", help="time a smaller/larger spatial size than the protocol's")
    p.add_argument("--video", metavar="PATH", help="video for the end-to-end figure (default: a synthetic clip)")
    p.add_argument("--e2e-iters", type=int, default=3, metavar="N", help="end-to-end runs (0 skips; default 3)")
    p.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into the convolutions first")
    _add_common(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("verify", help="reproduce a model's reported accuracy on your copy of its test set")
    p.add_argument("name", help="model name or alias (the GYM99 fusion entry runs both members)")
    p.add_argument("--data-root", required=True, metavar="DIR", help="folder the annotation paths are relative to")
    p.add_argument("--ann-file", required=True, metavar="FILE", help="the test list (upstream annotation format)")
    p.add_argument(
        "--checkpoint",
        nargs="+",
        metavar="PATH",
        help="local weights instead of the verified download (one per member for a fusion entry)",
    )
    p.add_argument("--format", choices=("auto", "video", "rawframes"), default="auto", help="input format")
    p.add_argument("--out", metavar="DIR", help="results folder (default ./verify-NAME); rerunning resumes")
    p.add_argument("--num-workers", type=int, metavar="N", help="data loading processes")
    p.add_argument(
        "--batch-views",
        type=int,
        default=60,
        metavar="N",
        help="views per batch (default 60): one forward pass on a GPU, one view per pass on CPU",
    )
    p.add_argument("--device", help="cpu, cuda, ...")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N videos (the verdict is then not judged)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable video")
    p.add_argument("--amp", action="store_true", help="autocast (not the upstream setting)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (about a minute up front, then faster; for long runs)",
    )
    p.add_argument(
        "--sampling",
        choices=("mmaction0x", "pyslowfast"),
        help="test clip offsets (default mmaction0x, which produced the reported numbers)",
    )
    p.add_argument("--tolerance", type=float, metavar="POINTS", help="largest accepted |measured - reported|")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(p, json_help="print results.json instead of the summary table")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("fuse", help="fuse per-video scores.npz files (e.g. GYM99 RGB + flow, 1:1)")
    p.add_argument("scores", nargs="+", metavar="SCORES", help="scores.npz files or verify output folders")
    p.add_argument("--out", metavar="PATH", help="write the fused scores (.npz file or folder)")
    p.add_argument("--weights", metavar="W1,W2", help="score weights, default 1:1")
    p.add_argument("--allow-partial", action="store_true", help="fuse the videos common to all inputs only")
    _add_common(p)
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("import", help="verify, convert and cache checkpoint files you already have")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="upstream .pth files (any name) or folders")
    _add_common(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("download", help="fetch verified weights into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or aliases")
    p.add_argument("--all", action="store_true", help="every model with a checkpoint")
    p.add_argument("--verify", action="store_true", help="re-hash cached files in full")
    _add_common(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("export", help="write model.safetensors + config.json + model card (for the Hugging Face Hub)")
    p.add_argument("name", help="model name or alias")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--weights", metavar="PATH", help="upstream .pth / .safetensors to export (default: the cache)")
    _add_common(p)
    p.set_defaults(func=cmd_export)
    return parser


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is a complete sentence for the user (printed without traceback)."""
    from .index import ModelIndexError, UnknownModelError
    from .inference import InferenceError

    types: list[type[BaseException]] = [CLIError, UnknownModelError, ModelIndexError, InferenceError, OSError]
    optional = [
        ("slowonly_zoo.data.decode", "VideoDecodeError"),
        ("slowonly_zoo.data.rawframes", "FrameReadError"),
        ("slowonly_zoo.weights.sources", "WeightsNotFoundError"),
        ("slowonly_zoo.weights.convert", "CheckpointMismatchError"),
        ("slowonly_zoo.weights.checkpoint", "UnsafeCheckpointError"),
        ("slowonly_zoo.weights.download", "DownloadError"),
        ("slowonly_zoo.evaluation.fusion", "ScoreMismatchError"),
        ("slowonly_zoo.evaluation.scores", "RunMismatchError"),
        ("slowonly_zoo.evaluation.runner", "BadInputError"),
    ]
    import importlib

    for module, name in optional:
        try:
            types.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')) and text.endswith(("'", '"')):
        text = text[1:-1]
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 user error, 2 verification failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = bool(getattr(args, "debug", False))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # output piped into `head` & co.: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_USER_ERROR
    except SystemExit:
        raise
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, _user_error_types()):
            _err(f"slowonly-zoo {args.command}: error: {_message(exc)}")
        else:
            _err(
                f"slowonly-zoo {args.command}: error: {type(exc).__name__}: {_message(exc)} "
                "(unexpected; rerun with --debug for the traceback and please report it)"
            )
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
