"""``slowonly-zoo`` (also ``python -m slowonly_zoo``): the command line. It parses arguments and prints; the work is
done by :mod:`slowonly_zoo.inference`, :mod:`slowonly_zoo.features`, :mod:`slowonly_zoo.benchmark`,
:mod:`slowonly_zoo.evaluation` and :mod:`slowonly_zoo.weights`.

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

from . import config
from .errors import CLIError, SlowOnlyZooError

__all__ = ["EXIT_OK", "EXIT_USER_ERROR", "EXIT_VERIFY_FAILED", "build_parser", "main", "run_script"]

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
        return check_cached(entry.name, source_sha256_prefixes=accepted_prefixes(entry), quick=True).ok
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
        "provenance": entry.provenance,
        "checkpoint_format": entry.checkpoint.format if entry.checkpoint else None,
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

    entries = [get_model_info(n) for n in list_models(args.pattern, provenance=args.provenance)]
    if args.dataset:
        known = sorted({e.dataset for e in entries})
        entries = [e for e in entries if _dataset_matches(e, args.dataset)]
        if not entries:
            raise CLIError(
                f"no model is evaluated on a dataset matching --dataset {args.dataset!r}; choose one of "
                f"{', '.join(known)} (or an alias such as k400, sthv1, gym)"
            )
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
            r["modality"],
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
    headers = ["name", "dataset", "modality", "top-1", "top-5", "params", "test protocol", "cached"]
    _out(_table(headers, cells, {3, 4, 5}))
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
        data["sources"] = _sources_tried(entry)
        _json(data)
        return EXIT_OK
    lines = [entry.name, "=" * len(entry.name)]

    def add(key: str, value: Any) -> None:
        if value not in (None, "", (), []):
            lines.append(f"{key + ':':<18}{value}")

    add("aliases", ", ".join(entry.aliases))
    add("not supported", entry.unsupported)
    add("provenance", entry.provenance)
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
        if a.head_mode != "global":
            add("head", f"{a.head_mode}: ({a.clip_len}, 7, 7) window, stride 1 (FAIR's head)")
    p = entry.protocol
    if p is not None:
        lines.append("test protocol:")
        lines.append(
            f"  data            {p.data_format}"
            + (f" ({p.filename_tmpl}, frames numbered from {p.start_index})" if p.filename_tmpl else "")
        )
        lines.append(
            f"  sampling        {p.num_clips} clips of {p.clip_len} frames every {p.frame_interval} "
            f"(SampleFrames test_mode, mmaction2 {p.sampling.removeprefix('mmaction')[0]}.x)"
            if p.sampling in ("mmaction0x", "mmaction1x")
            else f"  sampling        {p.num_clips} clip(s) of {p.clip_len} frames, {p.sampling}"
            + (f" at {p.target_fps:g} fps" if p.target_fps else "")
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
            if p.is_mmaction2
            else f"  views           {p.num_views} per video, scores: {p.score_activation} per view, "
            f"{p.view_ensemble} over views, metric {p.metric} (FAIR's; verify/predict do not run it yet)"
        )
    if entry.train_recipe is not None:
        lines += _recipe_lines(entry.train_recipe)
    for r in entry.results:
        metrics = ", ".join(
            f"{k} {v:.2f}"
            for k, v in (
                ("top-1", r.top1),
                ("top-5", r.top5),
                ("mean class", r.mean_class_accuracy),
                ("mAP", r.mean_average_precision),
            )
            if v is not None
        )
        speed = f", {r.inference_time} video/s" if r.inference_time else ""
        lines.append(f"reported:         {metrics}{speed}  [{r.source}]")
    ck = entry.checkpoint
    if ck is not None:
        add("checkpoint", ck.url)
        add("format", ck.format)
        add("sha256 prefix", ck.sha256_prefix or "none (the file name carries no hash; pinned on first download)")
        from .weights.sources import pinned_on_first_use, pinned_sha256

        full = pinned_sha256(entry)
        add("sha256", f"{full}{' (pinned on first use)' if pinned_on_first_use(entry) else ''}" if full else None)
        add("previous names", ", ".join(ck.previous_filenames))
        add("hf hub", ck.hf_hub_id)
        lines.append("sources tried:    in this order, the first that verifies wins")
        lines += [f"  {i}. {s['kind']:<12}{s['location']}" for i, s in enumerate(_sources_tried(entry), 1)]
    add("weights cached", {True: "yes", False: "no", None: "?"}[cached])
    _out("\n".join(lines))
    return EXIT_OK


def _sources_tried(entry: Any) -> list[dict[str, str]]:
    """Where ``pretrained=True`` looks for ``entry``'s weights, in order (``weights.sources.source_plan``, after
    the cache; offline: the cache only), for ``info``."""
    if entry.checkpoint is None:
        return []
    from .weights.cache import weights_path
    from .weights.sources import is_offline, source_plan

    found = [{"kind": "cache", "location": str(weights_path(entry.name))}]
    if is_offline():
        return [*found, {"kind": "offline", "location": "SLOWONLY_ZOO_OFFLINE / HF_HUB_OFFLINE: nothing else"}]
    return found + [{"kind": kind, "location": where} for kind, where in source_plan(entry)]


def _recipe_lines(r: Any) -> list[str]:
    """``info``'s lines for a :class:`~slowonly_zoo.index.TrainRecipe`."""
    s = r.sampling
    init = {
        "scratch": "from scratch",
        "imagenet": "ImageNet ResNet-50 (torchvision), inflated to 3D",
    }.get(r.init, f"the weights of {r.init} (head replaced when the class count differs)")
    flip = f"Flip({r.flip_ratio:g}" + (f", labels swapped {r.flip_labels}" if r.flip_label_map else "") + ")"
    steps = [
        f"SampleFrames({s.clip_len}x{s.frame_interval}, {s.num_clips} clip, train mode)",
        f"Resize(short side {r.resize_short})" if r.resize_short else None,
        f"RandomResizedCrop(area {r.crop.area[0]:g}-{r.crop.area[1]:g}, aspect {r.crop.aspect[0]:.3g}-"
        f"{r.crop.aspect[1]:.3g})",
        f"Resize({r.out_size}x{r.out_size})",
        flip,
        f"Normalize(mean {list(r.mean)}, std {list(r.std)})",
    ]
    v = r.val
    val = f"{v.num_clips} clip, " + (f"short side {v.resize_short}, " if v.resize_short else "no resize, ")
    lines = [f"train recipe:     {r.config} (mmaction2 0.x)"]
    if not r.runnable:
        lines.append(f"  not rerunnable  {r.note}")
    elif r.note:
        lines.append(f"  note            {r.note}")
    lines += [
        f"  batch           {r.videos_per_gpu} clips/GPU; lr set for {r.lr_gpus} GPUs (total {r.reference_batch})"
        + (f", trained on {r.gpus} GPUs" if r.gpus else ""),
        f"  optimiser       SGD lr {r.lr:g} (x your total batch / {r.reference_batch}), momentum {r.momentum:g}, "
        f"weight decay {r.weight_decay:g}"
        + (f", clip grad norm {r.clip_max_norm:g}" if r.clip_max_norm is not None else ", no grad clipping"),
        f"  lr schedule     {r.schedule.describe()}",
        f"  epochs          {r.epochs}; val every {r.val_interval}, checkpoint every {r.save_interval}, "
        f"log every {r.log_interval} iterations",
        f"  init            {init}",
        f"  head dropout    {r.dropout:g}",
        "  train pipeline  " + " -> ".join(x for x in steps if x),
        f"  val pipeline    {val}CenterCrop({v.crop_size})",
    ]
    return lines


# --------------------------------------------------------------------------------------------------
# predict / extract / benchmark
# --------------------------------------------------------------------------------------------------


def _check_clips(args: argparse.Namespace) -> None:
    """Refuse counts below 1 (``--clips``, ``--batch-views``, ``--limit``) before any work starts."""
    for attr in ("clips", "batch_views", "limit"):
        value = getattr(args, attr, None)
        if value is not None and value < 1:
            option = "--" + attr.replace("_", "-")
            raise CLIError(f"{option} must be 1 or more, got {value}; leave it out for the default")


def _check_inputs(name: str, videos: Sequence[Path]) -> None:
    """Refuse unusable inputs (missing, RGB video for a flow model) before any weights are fetched."""
    from .index import get_model_info
    from .inference import check_source

    entry = get_model_info(name)
    if not entry.is_ensemble:
        for video in videos:
            check_source(entry, video)


def _timeline_prefix(args: argparse.Namespace, video: Path) -> Path:
    """Where ``predict --timeline`` writes VIDEO's ``.json`` / ``.csv`` / ``.png`` (the suffix is added)."""
    if args.timeline_out:
        return Path(args.timeline_out)
    return Path(args.out or ".") / f"{video.stem}.timeline"


def _check_timeline_options(args: argparse.Namespace, videos: Sequence[Path]) -> None:
    """Refuse timeline options without ``--timeline`` and per-video outputs for several videos."""
    if args.audio and not args.out_video:
        raise CLIError("--audio needs --out-video")
    if args.out_video:
        args.timeline = True
    if not args.timeline:
        for attr in ("window_stride", "timeline_out", "out"):
            if getattr(args, attr) is not None:
                raise CLIError(f"--{attr.replace('_', '-')} needs --timeline")
        return
    if args.clips is not None:
        raise CLIError("--timeline classifies one centre crop per window; leave out --clips")
    if args.window_stride is not None and args.window_stride < 1:
        raise CLIError(f"--window-stride must be 1 or more frames, got {args.window_stride}")
    if args.timeline_out and args.out:
        raise CLIError("give either --timeline-out PREFIX or --out DIR, not both")
    if len(videos) > 1 and (args.timeline_out or args.out_video):
        raise CLIError("--timeline-out and --out-video name one output: pass one video (or use --out DIR)")


def _predict_timeline(args: argparse.Namespace, videos: Sequence[Path]) -> int:
    """``predict --timeline``: per video, the windows' table (or JSON), the three files, and ``--out-video``."""
    from .inference import load_model
    from .timeline import check_timeline_input, plot, timeline, write_csv, write_json

    for video in videos:  # refuse what cannot run before any weights are fetched
        check_timeline_input(args.name, video)
    model, _ = load_model(args.name, checkpoint=args.checkpoint, device=args.device)  # once, for every video
    results: list[dict[str, Any]] = []
    failures = 0
    for video in videos:
        try:
            result = timeline(model, video, window_stride=args.window_stride, topk=args.topk, progress=None)
            prefix = _timeline_prefix(args, video)
            prefix.parent.mkdir(parents=True, exist_ok=True)
            files = [
                write_json(result, prefix.with_name(prefix.name + ".json")),
                write_csv(result, prefix.with_name(prefix.name + ".csv")),
                plot(result, prefix.with_name(prefix.name + ".png"), top=min(args.topk, 5)),
            ]
            if args.out_video:
                from .overlay import write_labelled_video

                files.append(
                    write_labelled_video(
                        video, args.out_video, result.windows, topk=args.topk, with_audio=args.audio, progress=None
                    )
                )
        except (OSError, RuntimeError, ValueError) as exc:  # unreadable input: report it, go on with the rest
            failures += 1
            results.append({"video": str(video), "error": str(exc)})
            if not args.json:
                _err(f"error: {exc}")
            if args.debug:
                raise
            continue
        results.append({**result.to_dict(), "files": [str(f) for f in files]})
        if not args.json:
            _out(
                f"{video}  ({result.model}, {len(result.windows)} windows of {result.clip_len}x"
                f"{result.frame_interval} frames every {result.window_stride}, {result.num_frames} frames)"
            )
            for w in result.windows:
                top = w.topk[0]
                label = top.label if top.label is not None else f"<unnamed output {top.index}>"
                _out(f"  {w.index:>4}  {w.start:9.2f} - {w.end:9.2f} s  {top.prob:7.4f}  {label}")
            _out("wrote " + ", ".join(str(f) for f in files))
    if args.json:
        _json(results)
    return EXIT_USER_ERROR if failures else EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from .data.threads import one_ahead
    from .inference import Predictor
    from .inputs import expand_inputs

    _check_clips(args)
    if args.topk < 1:
        raise CLIError(f"--topk must be 1 or more, got {args.topk}")
    videos = expand_inputs(args.videos)
    _check_timeline_options(args, videos)
    _check_inputs(args.name, videos)
    if args.timeline:
        return _predict_timeline(args, videos)
    predictor = Predictor(
        args.name,
        checkpoint=args.checkpoint,
        clips=args.clips,
        device=args.device,
        batch_views=args.batch_views,
        amp=args.amp,
    )
    results: list[dict[str, Any]] = []
    failures = 0
    for video, views in one_ahead(predictor.views_of, videos):  # the next video decodes while the model runs
        try:
            pred = predictor.predict_one(video, args.topk, views())
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
                f"{video}  ({predictor.entry.name}, {predictor.dtype}, {pred.num_views} "
                f"view{'s' if pred.num_views > 1 else ''}, "
                f"{pred.seconds:.1f} s)"
            )
            for rank, c in enumerate(pred.topk, 1):
                label = c.label if c.label is not None else f"<unnamed output {c.index}>"
                _out(f"  {rank:>2}. {c.prob:7.4f}  {label}  [{c.index}]")
            if pred.unlabelled_prob:
                _out(
                    f"      ({pred.unlabelled_prob:.4f} on the {len(pred.probs) - len(predictor.labels)}"
                    " unnamed head outputs)"
                )
    if args.json:
        _json(results)
    return EXIT_USER_ERROR if failures else EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    from .features import extract
    from .inputs import expand_inputs

    _check_clips(args)
    videos = expand_inputs(args.videos, root=args.root)
    _check_inputs(args.name, videos[:1])  # the modality check, before fetching weights; others are checked per input

    from .progress import show_progress

    bar = show_progress()  # on a terminal a bar over the inputs replaces the per-file lines

    def on_progress(source: str, status: str, detail: str) -> None:
        if args.json:
            return
        if status == "failed":
            _err(f"failed   {source}: {detail}")
        elif not (bar or config.quiet()):  # per-file lines in pipes and logs; the summary is printed regardless
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
    say: Callable[[str], None] | None = None if args.json or config.quiet() else (lambda m: _err(f"  {m}"))
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
        f"settings        batch 1 video = {result['views_per_video']} "
        f"view{'s' if result['views_per_video'] != 1 else ''} of {tuple(result['input_per_view'])}, "
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

    _check_clips(args)
    checkpoint: Any = None
    if args.checkpoint:
        checkpoint = args.checkpoint[0] if len(args.checkpoint) == 1 else list(args.checkpoint)
    result = verify(
        args.name,
        args.data_root,
        args.ann_file,
        checkpoint=checkpoint,
        source_format=args.format,
        out=args.out,
        num_workers=args.num_workers,
        batch_views=args.batch_views,
        device=args.device,
        limit=args.limit,
        strict=args.strict,
        amp=args.amp,
        sampling=args.sampling,
        tolerance=args.tolerance,
        progress=False if args.no_progress else None,
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


def cmd_plot_log(args: argparse.Namespace) -> int:
    from .training.plot import plot_logs, read_log

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError as exc:
        raise CLIError(f"--size must be WIDTHxHEIGHT in pixels, like 1500x450 (got {args.size!r})") from exc
    out = plot_logs(args.log, args.out, against=args.against, size=(width, height), title=args.title)
    logs = [read_log(args.log)] + ([read_log(args.against)] if args.against else [])
    report = {"out": str(out), "size": [width, height], "logs": {str(log.path): log.records for log in logs}}
    if args.json:
        _json(report)
    else:
        _out(f"wrote {out} ({width}x{height}): " + ", ".join(f"{log.path} ({log.records} records)" for log in logs))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from .training.trainer import TrainOptions, fit

    options = TrainOptions(
        name=args.name,
        data_root=args.data_root,
        work_dir=args.work_dir,
        ann_file=args.ann_file,
        val_ann_file=args.val_ann_file,
        val_data_root=args.val_data_root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        num_classes=args.num_classes,
        init=args.init,
        amp=args.amp,
        seed=args.seed,
        deterministic=args.deterministic,
        num_workers=args.num_workers,
        resume=args.resume,
        val_interval=args.val_interval,
        save_interval=args.save_interval,
        max_iters=args.max_iters,
        sync_bn=args.sync_bn,
        device=args.device,
        log_interval=args.log_interval,
        source_format=args.format,
        progress=False if args.no_progress else None,
        test_best=args.test_best,
        test_ann_file=args.test_ann_file,
        test_data_root=args.test_data_root,
    )
    rank0 = os.environ.get("RANK", "0") == "0"
    say = _out if rank0 and not (config.quiet() or args.json) else None
    result = fit(options, print_fn=say)
    if rank0 and args.json:
        _json(
            {
                "work_dir": str(result.work_dir),
                "epochs": result.epochs_done,
                "iterations": result.iters_done,
                "lr": result.lr,
                "lr_derivation": result.lr_derivation,
                "best_top1": result.best_top1,
                "best_epoch": result.best_epoch,
                "last_val": result.last_val,
                "bad_samples": [vars(b) for b in result.bad_samples],
                "class_names": result.class_names,
                "test": None if result.test is None else result.test.report,
            }
        )
    elif rank0:
        best = (
            f"best val top-1 {result.best_top1:.2f} (epoch {result.best_epoch})" if result.best_top1 is not None else ""
        )
        bad = f"{len(result.bad_samples)} unreadable training samples replaced" if result.bad_samples else ""
        details = "; ".join(x for x in (best, bad) if x)
        _out(
            f"done: {result.epochs_done} complete epochs, {result.iters_done} iterations; work dir {result.work_dir}"
            + (f"; {details}" if details else "")
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# import / download / export
# --------------------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from .weights.transfer import import_files

    results = import_files(args.paths, trust_claims=True if args.trust_claims else None)
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
    from .weights.transfer import download, download_summary

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
        for r in reports:  # with --all, the models already in the cache are only counted in the summary
            if not (args.all and r.ok and r.status in ("cached", "verified")):
                (_out if r.ok else _err)(str(r))
        _out(download_summary(reports))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_USER_ERROR


def cmd_lock(args: argparse.Namespace) -> int:
    from .weights.lockfile import write_lock

    if not args.names and not args.all:
        raise CLIError("name at least one cached model or pass --all")
    if args.names and args.all:
        raise CLIError("pass model names or --all, not both")
    if args.names:
        from .index import get_model_info

        names = [get_model_info(n).name for n in args.names]
    models = write_lock(None if args.all else names, args.out)
    if args.json:
        _json({n: {"filename": m.filename, "sha256": m.sha256, "size": m.size} for n, m in models.items()})
    else:
        _out(f"wrote {len(models)} model(s) to {args.out}")
    return EXIT_OK


def cmd_mirror(args: argparse.Namespace) -> int:
    from .weights.mirror import mirror

    if not args.names and not args.all:
        raise CLIError("name at least one cached model or pass --all")
    if args.names and args.all:
        raise CLIError("pass model names or --all, not both")
    result = mirror(args.dir, None if args.all else args.names, force=args.force, progress=False if args.json else None)
    if args.json:
        _json(
            {
                "dir": str(result.root),
                "lock": str(result.lock),
                "files": [
                    {"name": f.name, "path": str(f.path), "status": f.status, "sha256": f.sha256, "size": f.size}
                    for f in result.files
                ],
            }
        )
        return EXIT_OK
    for f in result.files:
        _out(f"{f.status:>9}  {f.name}: {f.path.relative_to(result.root)} ({f.size / 1e6:.1f} MB)")
    _out(
        f"mirrored {len(result.files)} model(s) into {result.root}, lock file {result.lock.name}; serve it with "
        f"`python -m http.server 8000` there and set SLOWONLY_ZOO_MIRRORS=http://HOST:8000 "
        f"(and SLOWONLY_ZOO_LOCK=weights.lock) on the machines that use it"
    )
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from .weights.register import register_weights

    result = register_weights(
        args.weights,
        args.as_name,
        args.like,
        num_classes=args.num_classes,
        labels=args.labels,
        dataset=args.dataset,
        index_file=args.index,
    )
    if args.json:
        _json(
            {
                "name": result.name,
                "index_file": str(result.index_file),
                "sha256": result.sha256,
                "index_active": result.index_active,
                "import": result.import_message,
            }
        )
        return EXIT_OK
    _out(f"registered {result.name} in {result.index_file} (weights sha256 {result.sha256[:12]}…)")
    _out(f"  {result.import_message.strip()}")
    if not result.index_active:
        _out(f"  to use it, set SLOWONLY_ZOO_EXTRA_INDEX={result.index_file.resolve()}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    if args.format != "hub":
        return _export_for_deployment(args)
    if args.random_init:
        raise CLIError("--random-init is for --format onnx / torch-export / torchscript; the hub export needs weights")
    from .weights.hub_export import export

    result = export(args.name, args.out, args.weights, force=args.force)
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


def _export_for_deployment(args: argparse.Namespace) -> int:
    from .deploy import CHECK_BATCH, export_for_deployment

    result = export_for_deployment(
        args.name, args.out, args.format, weights_path=args.weights, random_init=args.random_init, force=args.force
    )
    if args.json:
        _json(
            {
                "out_dir": str(result.out_dir),
                "format": result.format,
                "file": str(result.artefact),
                "readme": str(result.readme),
                "config": str(result.config),
                "labels": None if result.labels is None else str(result.labels),
                "max_abs_logit_diff": result.max_abs_diff,
                "input_shape": list(result.input_shape),
                "dynamic_axes": list(result.dynamic_axes),
            }
        )
    else:
        _out(f"max |logit diff| = {result.max_abs_diff:.3g} (exported vs eager fp32, batch of {CHECK_BATCH})")
        _out(
            f"exported {args.name} as {result.format} to {result.out_dir}: {result.artefact.name}, "
            f"{result.readme.name}, {result.config.name}" + (f", {result.labels.name}" if result.labels else "")
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser, *, json_help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors")
    p.add_argument(
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or messages, only results and errors (as SLOWONLY_ZOO_QUIET=1)",
    )


def _add_lock(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock",
        metavar="FILE",
        default=None,
        help="refuse weights whose full sha256 or size differs from this lock file, or that it does not list "
        "(as SLOWONLY_ZOO_LOCK=FILE)",
    )


def _add_model_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name or alias (see `slowonly-zoo list`)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="local upstream .pth, .safetensors or export folder instead of the released weights",
    )
    _add_lock(p)
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
    p.add_argument(
        "--provenance",
        choices=("mmaction2-0.x", "mmaction2-1.x", "pytorchvideo", "pyslowfast"),
        help="only the checkpoints of one publisher",
    )
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
    p.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast: on a GPU or a CPU with native bf16 (refused where the CPU would emulate it)",
    )
    p.add_argument(
        "--timeline",
        action="store_true",
        help="slide the model's clip over the whole video: top-k per window with start/end seconds, written as "
        "JSON, CSV and a PNG plot (one centre crop per window)",
    )
    p.add_argument(
        "--window-stride",
        type=int,
        metavar="S",
        help="with --timeline: frames between window starts (default clip_len x frame_interval)",
    )
    p.add_argument(
        "--timeline-out",
        metavar="PREFIX",
        help="with --timeline and one video: write PREFIX.json, PREFIX.csv, PREFIX.png "
        "(default: VIDEO_NAME.timeline.* in --out DIR or the current folder)",
    )
    p.add_argument("--out", metavar="DIR", help="with --timeline: folder for the VIDEO_NAME.timeline.* files")
    p.add_argument(
        "--out-video",
        metavar="OUT.mp4",
        help="with one video: also write it with each window's top-k labels drawn on the frames (implies --timeline)",
    )
    p.add_argument("--audio", action="store_true", help="with --out-video: keep the source's audio")
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
    p.add_argument("--iters", type=int, help="iterations incl. warm-up (default: 200 on GPU as upstream, 2 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed first iterations (default: 5 on GPU as upstream, 1 on CPU)")
    p.add_argument("--clips", type=int, metavar="N", help="time N clips x 1 centre crop instead of the test views")
    p.add_argument("--crop-size", type=int, metavar="PX", help="time a smaller/larger spatial size than the protocol's")
    p.add_argument("--video", metavar="PATH", help="video for the end-to-end figure (default: a synthetic clip)")
    p.add_argument("--e2e-iters", type=int, metavar="N", help="end-to-end runs (0 skips; default: 3 on GPU, 0 on CPU)")
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
    p.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast (not the upstream setting): on a GPU or a CPU with native bf16; refused where the CPU "
        "would emulate it (SLOWONLY_ZOO_ALLOW_EMULATED_BF16=1 forces it)",
    )
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

    p = sub.add_parser("plot-log", help="plot loss, lr and accuracy of a training log.jsonl, beside upstream's")
    p.add_argument("log", metavar="LOG", help="the trainer's log.jsonl (or any upstream-style *.log.json)")
    p.add_argument("--against", metavar="UPSTREAM.log.json", help="an upstream log to draw beside it (dashed)")
    p.add_argument("--out", required=True, metavar="PNG", help="the PNG file to write")
    p.add_argument("--size", default="1500x450", metavar="WxH", help="image size in pixels (default 1500x450)")
    p.add_argument("--title", help="figure title (default: the log's file name)")
    _add_common(p)
    p.set_defaults(func=cmd_plot_log)

    p = sub.add_parser("train", help="train or fine-tune a model with its upstream recipe (torchrun-aware)")
    p.add_argument("name", help="model name or alias: its recipe and architecture are used")
    p.add_argument("--data-root", required=True, metavar="DIR", help="folder the annotation paths are relative to")
    p.add_argument(
        "--ann-file",
        metavar="FILE",
        help="training list (video list or rawframe list); without it DIR holds one sub-folder per class",
    )
    p.add_argument("--val-ann-file", metavar="FILE", help="validation list (or a folder-per-class folder)")
    p.add_argument("--val-data-root", metavar="DIR", help="folder the validation paths are relative to (default DIR)")
    p.add_argument("--work-dir", required=True, metavar="DIR", help="checkpoints, latest.pt, log.jsonl, recipe.json")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, metavar="N", help="clips per process and iteration (default: recipe's)")
    p.add_argument(
        "--lr", type=float, help="learning rate (default: the recipe's, scaled linearly to the actual total batch)"
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="head size (default: the entry's, or the folders)")
    p.add_argument(
        "--init",
        metavar="NAME|PATH|imagenet:PATH|scratch",
        help="initial weights (default: the recipe's): a zoo model, a checkpoint file, a torchvision resnet50 file "
        "to inflate, or scratch",
    )
    p.add_argument(
        "--amp", action="store_true", help="mixed precision (float16 + loss scaling on CUDA, bfloat16 on CPU)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower on CUDA)")
    p.add_argument("--num-workers", type=int, metavar="N", help="data loading processes per training process")
    p.add_argument("--resume", action="store_true", help="continue from the work dir's latest.pt")
    p.add_argument("--val-interval", type=int, metavar="N", help="validate every N epochs (default: the recipe's)")
    p.add_argument("--save-interval", type=int, metavar="N", help="checkpoint every N epochs (default: the recipe's)")
    p.add_argument("--log-interval", type=int, metavar="N", help="iterations per log record (default: the recipe's)")
    p.add_argument("--max-iters", type=int, metavar="N", help="stop after N iterations in all (short runs)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (upstream: per process)")
    p.add_argument("--device", help="cpu, cuda, ... (default: a GPU when there is one)")
    p.add_argument("--format", choices=("auto", "video", "rawframes"), default="auto", help="input format")
    p.add_argument(
        "--test-best",
        action="store_true",
        help="at the end, run verify's full test protocol on best.safetensors (report in WORK_DIR/test_best/)",
    )
    p.add_argument("--test-ann-file", metavar="FILE", help="--test-best on this list or folder, not the val list")
    p.add_argument("--test-data-root", metavar="DIR", help="folder the test paths are relative to (default: val's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("import", help="verify, convert and cache checkpoint files you already have")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="upstream .pth files (any name) or folders")
    p.add_argument(
        "--trust-claims",
        action="store_true",
        help="cache a converted .safetensors / export folder by the source sha256 it claims (not verifiable)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("download", help="fetch verified weights into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or aliases")
    p.add_argument("--all", action="store_true", help="every model with a checkpoint")
    p.add_argument("--verify", action="store_true", help="re-hash cached files in full")
    _add_lock(p)
    _add_common(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("lock", help="write the full sha256 and size of cached weights to a lock file (JSON)")
    p.add_argument("names", nargs="*", metavar="NAME", help="cached model names or aliases")
    p.add_argument("--all", action="store_true", help="every cached model")
    p.add_argument("--out", required=True, metavar="FILE", help="the lock file to write, e.g. weights.lock")
    _add_common(p)
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser(
        "mirror", help="write the cached models' original files into DIR laid out like their hosts, plus a lock file"
    )
    p.add_argument("dir", metavar="DIR", help="the mirror folder (created if needed); serve it with any web server")
    p.add_argument("names", nargs="*", metavar="NAME", help="cached model names or aliases")
    p.add_argument("--all", action="store_true", help="every cached model")
    p.add_argument("--force", action="store_true", help="replace files in DIR that differ from the cached originals")
    _add_common(p)
    p.set_defaults(func=cmd_mirror)

    p = sub.add_parser("register", help="make your own weights a named model (an extra index entry), in one command")
    p.add_argument("weights", metavar="WEIGHTS", help="your .pth in mmaction2's layout (train's epoch_N.pth)")
    p.add_argument("--as", dest="as_name", required=True, metavar="NAME", help="the new model's name")
    p.add_argument(
        "--like", required=True, metavar="ENTRY", help="the model whose architecture and test protocol yours has"
    )
    p.add_argument("--num-classes", type=int, metavar="K", help="head size (default: the labels' count, or ENTRY's)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")
    p.add_argument("--dataset", metavar="TEXT", help="what the model classifies (default: custom)")
    p.add_argument(
        "--index",
        metavar="FILE",
        help="extra index file to add the entry to (default: the first SLOWONLY_ZOO_EXTRA_INDEX file, else "
        "./slowonly_zoo_index.yml)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser(
        "export",
        help="write model.safetensors + config.json + model card (for the Hugging Face Hub), or with --format a "
        "checked ONNX / torch.export / TorchScript model for deployment",
    )
    p.add_argument("name", help="model name or alias")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--format",
        choices=("hub", "onnx", "torch-export", "torchscript"),
        default="hub",
        help="hub (default): weights + model card; onnx / torch-export / torchscript: the inference form (BatchNorm "
        "folded), loaded back and checked against the eager model (onnx needs pip install 'slowonly-zoo[export]')",
    )
    p.add_argument("--weights", metavar="PATH", help="upstream .pth / .safetensors to export (default: the cache)")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="with --format onnx/torch-export/torchscript: random weights, to try the export without downloading",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out, replacing an earlier export's files there (never other files)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_export)
    return parser


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


#: Errors whose message is a complete sentence for the user, printed without a traceback: the package's own
#: (:mod:`slowonly_zoo.errors`) and the operating system's (a missing file, a full disk, no permission), whose
#: message names the file.
USER_ERRORS: tuple[type[BaseException], ...] = (SlowOnlyZooError, OSError)


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')) and text.endswith(("'", '"')):
        text = text[1:-1]
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text or type(exc).__name__


def run_script(script_main: Callable[[], int], prog: str | None = None) -> int:
    """Run an example script's ``main()`` as the command line runs a command: a user error (see
    :data:`USER_ERRORS`) is one line ``PROG: error: MESSAGE`` on stderr and exit status 1, not a traceback
    (``python -X dev SCRIPT`` shows it). Use as ``raise SystemExit(run_script(main))``."""
    name = prog or Path(sys.argv[0]).name
    try:
        return int(script_main())
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except USER_ERRORS as exc:
        if sys.flags.dev_mode:
            raise
        _err(f"{name}: error: {_message(exc)}")
        return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 user error, 2 verification failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = bool(getattr(args, "debug", False))
    args.quiet = bool(getattr(args, "quiet", False))
    if args.quiet:
        config.set_quiet(True)
    if getattr(args, "lock", None):
        config.set_lock_file(args.lock)
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
        if isinstance(exc, USER_ERRORS):
            _err(f"slowonly-zoo {args.command}: error: {_message(exc)}")
        else:
            _err(
                f"slowonly-zoo {args.command}: error: {type(exc).__name__}: {_message(exc)} "
                "(unexpected; rerun with --debug for the traceback and please report it)"
            )
        return EXIT_USER_ERROR
    finally:
        if args.quiet:
            config.set_quiet(None)  # main() may run in a longer-lived process (tests, notebooks)
        if getattr(args, "lock", None):
            config.set_lock_file(None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
