"""``slowonly-zoo verify``: reproduce a zoo model's reported accuracy on the user's copy of its test set.

:func:`verify` builds the entry's model (verified weights or a local checkpoint) and test dataset, runs
:func:`slowonly_zoo.evaluation.runner.evaluate`, and writes and prints the reported-vs-measured report. The GYM99
fusion entry evaluates each member and fuses their probabilities. Under ``torchrun`` every member shares one process
group (:mod:`slowonly_zoo.evaluation.distributed`).

FAIR's entries run their own protocol (index fields Sampling, View Ensemble, Score Activation, Metric; PySlowFast's
test loop ``tools/test_net.py`` with ``TestMeter``): the data layer samples and crops as PySlowFast does, the runner
applies the entry's activation and view ensemble, and a multi-label entry (Charades) reads a multi-label list
(``path label1 label2 ...``) and is judged on mean average precision (:func:`.metrics.mean_average_precision`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.annotations import Annotation, read_annotations
from ..data.dataset import TestDataset
from ..data.formats import check_source_format
from ..data.pipeline import normalize_views
from ..index import ModelEntry, get_model_info
from ..models.ensemble import outputs_probabilities
from ..runtime import resolve_device
from ..weights.hashing import sha256_file
from ..weights.layout import WEIGHTS_FILE
from .distributed import setup_distributed
from .metrics import compute_metrics, mean_average_precision
from .report import DEFAULT_TOLERANCE, RESULTS_FILE, build_report, format_summary, write_report
from .runner import DEFAULT_BATCH_VIEWS, EvalResult, evaluate, videos_per_batch
from .scores import SCORES_FILE, ScoreTable, write_scores

__all__ = ["ModelFactory", "VerifyOptions", "verify"]

CheckpointArg = str | os.PathLike[str] | None
ModelFactory = Callable[[ModelEntry, Path], nn.Module]
"""Builds the model to verify from (entry, checkpoint path)."""


@dataclass(frozen=True)
class VerifyOptions:
    """How :func:`verify` runs each model; the fields are :func:`verify`'s keyword arguments of the same names."""

    source_format: str = "auto"
    num_workers: int | None = None
    batch_views: int = DEFAULT_BATCH_VIEWS
    device: str | None = None
    limit: int | None = None
    strict: bool = False
    amp: bool = False
    sampling: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    progress: bool | None = None
    model_factory: ModelFactory | None = None
    normalize_on_device: bool | None = None
    compile: bool = False


def _make_dataset(
    entry: ModelEntry, ann_file: Path, data_root: Path, options: VerifyOptions, raw: bool = False
) -> tuple[TestDataset, Callable[[torch.Tensor], torch.Tensor] | None]:
    """``TestDataset`` for ``entry``, and the device-side transform its views need (None: they are ready).

    ``raw``: ask for uint8 views, normalised on the device (used on CUDA).
    """
    assert entry.protocol is not None
    transform = functools.partial(normalize_views, protocol=entry.protocol) if raw else None
    annotations = None
    if entry.protocol.metric == "mAP":  # multi-label: every label of each line
        annotations = read_annotations(ann_file, options.source_format, entry.num_classes, multi_label=True)
    dataset = TestDataset(
        entry,
        ann_file,
        data_root,
        source_format=options.source_format,
        sampling=options.sampling,  # None: the entry's own (0.x or 1.x offsets, or FAIR's sampling)
        normalize=not raw,
        annotations=annotations,
    )
    return dataset, transform


def multi_label_metrics(annotations: Sequence[Annotation]) -> Callable[[ScoreTable], dict[str, float]]:
    """The metric of a multi-label entry over a score table: ``mean_average_precision`` in percent, the targets
    being every label each video's list line gives (PySlowFast ``slowfast/utils/meters.py`` ``get_map`` over the
    video-level scores)."""
    labels_of = {a.id: a.labels or (a.label,) for a in annotations}

    def metrics(table: ScoreTable) -> dict[str, float]:
        targets = np.zeros(table.scores.shape, dtype=np.int64)
        for row, video in enumerate(table.ids.tolist()):
            targets[row, list(labels_of[video])] = 1
        return {"mean_average_precision": 100.0 * mean_average_precision(table.scores, targets)}

    return metrics


def _checkpoint_for(entry: ModelEntry, checkpoint: CheckpointArg) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"checkpoint {path} does not exist; pass the path of an upstream .pth or an exported file/folder"
            )
        return path
    from ..weights.sources import fetch_weights

    return Path(fetch_weights(entry))


def verify(
    name: str,
    data_root: str | Path,
    ann_file: str | Path,
    *,
    checkpoint: str | Path | Sequence[str | Path] | None = None,
    source_format: str = "auto",
    out: str | Path | None = None,
    num_workers: int | None = None,
    batch_views: int = DEFAULT_BATCH_VIEWS,
    device: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    amp: bool = False,
    sampling: str | None = None,
    tolerance: float | None = None,
    progress: bool | None = None,
    print_fn: Callable[[str], None] | None = print,
    model_factory: ModelFactory | None = None,
    normalize_on_device: bool | None = None,
    compile: bool = False,
) -> EvalResult:
    """Reproduce a zoo model's reported accuracy on the user's copy of its test set (``slowonly-zoo verify``).

    Runs the entry's upstream test protocol over ``ann_file`` (paths relative to ``data_root``), writes
    ``scores.npz`` and ``results.json`` into ``out`` (default ``./verify-<name>``), prints the reported-vs-measured
    table (rank 0), and returns the :class:`EvalResult` with ``report`` set. Rerunning the same command resumes.

    The GYM99 fusion entry evaluates each member into ``out/<member>/`` and fuses their probabilities 1:1.

    Args:
        checkpoint: a local upstream ``.pth`` / exported file or folder instead of the verified download; for the
            fusion entry, one path per member in the entry's member order.
        source_format: ``"video"``, ``"rawframes"`` or ``"auto"`` (per item: a folder is a frame folder, a file
            a video); see :mod:`slowonly_zoo.data.formats`.
        sampling: the data layer's test-clip sampling option (None: the entry's own, mmaction2 0.x ``SampleFrames``
            or, for the 1.x entries, mmaction2 1.x's offsets).
        tolerance: most |measured − reported| (percentage points) that still passes; default
            :data:`slowonly_zoo.evaluation.report.DEFAULT_TOLERANCE`.
        model_factory: builds the model from (entry, checkpoint path); default ``slowonly_zoo.create_model``.
        normalize_on_device: workers hand over uint8 views, normalised on the device (same numbers, 4x fewer
            bytes to move); default: on CUDA only.
        compile: run the model through ``torch.compile`` with weight freezing, on batches padded to one fixed
            size so it compiles once (about a minute up front; worth it for more than a few dozen videos).
        Other arguments: as :func:`slowonly_zoo.evaluation.runner.evaluate`.
    """
    entry = get_model_info(name)
    out_dir = Path(out) if out is not None else Path.cwd() / f"verify-{entry.name}"
    options = VerifyOptions(
        source_format=check_source_format(source_format),
        num_workers=num_workers,
        batch_views=batch_views,
        device=device,
        limit=limit,
        strict=strict,
        amp=amp,
        sampling=sampling,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        progress=progress,
        model_factory=model_factory,
        normalize_on_device=normalize_on_device,
        compile=compile,
    )
    if not entry.members and checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"{entry.name} is a single model: pass one checkpoint path, not {type(checkpoint).__name__}")
    ctx = setup_distributed(resolve_device(device))  # one process group for every member of a fusion
    try:
        if entry.members:
            return _verify_fusion(entry, Path(data_root), Path(ann_file), checkpoint, out_dir, print_fn, options)
        assert checkpoint is None or isinstance(checkpoint, (str, os.PathLike))
        result = _verify_single(entry, Path(data_root), Path(ann_file), checkpoint, out_dir, options)
        return _finish_report(result, entry, print_fn, options.tolerance)
    finally:
        ctx.close()


def _verify_single(
    entry: ModelEntry,
    data_root: Path,
    ann_file: Path,
    checkpoint: CheckpointArg,
    out_dir: Path,
    options: VerifyOptions,
) -> EvalResult:
    if entry.protocol is None:
        raise ValueError(f"{entry.name} has no test protocol in the index, so it cannot be verified")
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} does not exist; pass the test list with --ann-file")
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root {data_root} is not a folder; pass the dataset folder with --data-root")
    ckpt = _checkpoint_for(entry, checkpoint)
    ckpt_sha = sha256_file(ckpt / WEIGHTS_FILE if ckpt.is_dir() else ckpt)
    dev = resolve_device(options.device)
    raw = dev.type == "cuda" if options.normalize_on_device is None else options.normalize_on_device
    dataset, transform = _make_dataset(entry, ann_file, data_root, options, raw=raw)
    if options.model_factory is not None:
        model = options.model_factory(entry, ckpt)
    else:
        from ..factory import create_model
        from ..models.fuse import optimize_for_inference

        # the inference form (BatchNorm folded, channels-last, frames folded into the batch for the frame-wise
        # convolutions): same outputs to float rounding, less work per view
        model = optimize_for_inference(create_model(entry.name, pretrained=False, checkpoint_path=ckpt), inplace=True)
    probabilities = outputs_probabilities(model)  # a 'pyslowfast' head: no second softmax (read before wrapping)
    if options.compile:
        from ..models.fuse import FixedBatch, compile_for_inference, views_per_forward

        # one input shape, so it compiles once: the engine's forward size, padded when a batch ends short
        views = entry.protocol.num_views
        batch = videos_per_batch(dataset, options.batch_views, views) * views
        model = FixedBatch(compile_for_inference(model.to(dev)), views_per_forward(dev, batch))
    protocol = entry.to_dict()["protocol"]
    sampling = options.sampling or "default"
    run_info = {
        "model": entry.name,
        "checkpoint_sha256": ckpt_sha,
        "ann_file_sha256": sha256_file(ann_file),
        "format": options.source_format,
        "sampling": sampling,
        "protocol": protocol,
    }
    result = evaluate(
        model,
        dataset,
        out_dir=out_dir,
        batch_views=options.batch_views,
        num_workers=options.num_workers,
        device=dev,
        amp=options.amp,
        limit=options.limit,
        strict=options.strict,
        progress=options.progress,
        run_info=run_info,
        views_per_video=entry.protocol.num_views,
        transform=transform,
        score_activation=entry.protocol.score_activation,
        view_ensemble=entry.protocol.view_ensemble,
        model_outputs_probabilities=probabilities,
        metrics_fn=multi_label_metrics(dataset.annotations) if entry.protocol.metric == "mAP" else None,
    )
    result.settings.update(
        checkpoint=str(ckpt),
        checkpoint_sha256=ckpt_sha,
        ann_file=str(ann_file),
        data_root=str(data_root),
        format=options.source_format,
        sampling=sampling,
        protocol=protocol,
        limit=options.limit,
    )
    return result


def _verify_fusion(
    entry: ModelEntry,
    data_root: Path,
    ann_file: Path,
    checkpoint: str | Path | Sequence[str | Path] | None,
    out_dir: Path,
    print_fn: Callable[[str], None] | None,
    options: VerifyOptions,
) -> EvalResult:
    from .fusion import fuse_tables

    members = [get_model_info(m) for m in entry.members]
    ckpts: list[CheckpointArg]
    if checkpoint is None:
        ckpts = [None] * len(members)
    elif isinstance(checkpoint, (str, os.PathLike)) or len(checkpoint) != len(members):
        raise ValueError(
            f"{entry.name} fuses {len(members)} models ({', '.join(entry.members)}): pass one checkpoint per member, "
            "in that order, or none to use the verified downloads"
        )
    else:
        ckpts = list(checkpoint)
    member_results = []
    for member, ckpt in zip(members, ckpts):
        # each member reads the same list; frame folders hold img_ (RGB) and x_/y_ (flow) files
        res = _verify_single(member, data_root, ann_file, ckpt, out_dir / member.name, options)
        member_results.append(_finish_report(res, member, print_fn, options.tolerance))
    fused = fuse_tables(
        [r.table for r in member_results],
        names=[m.name for m in members],
        weights=entry.member_weights or None,
        allow_partial=True,
    )
    scores_path = write_scores(out_dir / SCORES_FILE, fused)
    first = member_results[0]
    result = EvalResult(
        out_dir=out_dir,
        scores_path=scores_path,
        table=fused,
        metrics=compute_metrics(fused.scores, fused.labels) if fused.ids.shape[0] else None,
        num_listed=first.num_listed,
        num_selected=first.num_selected,
        num_resumed=min(r.num_resumed for r in member_results),
        seconds=sum(r.seconds for r in member_results),
        videos_per_second=0.0,
        device=first.device,
        world_size=first.world_size,
        settings={
            **{k: v for k, v in first.settings.items() if k not in ("checkpoint", "checkpoint_sha256", "protocol")},
            "members": {
                m.name: {
                    "checkpoint": r.settings.get("checkpoint"),
                    "checkpoint_sha256": r.settings.get("checkpoint_sha256"),
                    "protocol": r.settings.get("protocol"),
                    "measured": r.metrics,
                    "results": str(r.results_path) if r.results_path else None,
                }
                for m, r in zip(members, member_results)
            },
            "fusion": "mean of the members' averaged class probabilities, 1:1",
        },
    )
    return _finish_report(result, entry, print_fn, options.tolerance)


def _finish_report(
    result: EvalResult, entry: ModelEntry, print_fn: Callable[[str], None] | None, tolerance: float
) -> EvalResult:
    rank = int(os.environ.get("RANK", "0"))
    result.report = build_report(result, entry, tolerance=tolerance)
    if rank == 0:
        result.results_path = write_report(result.report, result.out_dir)
        if print_fn is not None:
            print_fn(format_summary(result.report))
    else:
        result.results_path = result.out_dir / RESULTS_FILE
    return result
