"""``slowonly-zoo verify``: reproduce a zoo model's reported accuracy on the user's copy of its test set.

:func:`verify` builds the entry's model (verified weights or a local checkpoint) and test dataset, runs
:func:`slowonly_zoo.evaluation.runner.evaluate`, and writes and prints the reported-vs-measured report. The GYM99
fusion entry evaluates each member and fuses their probabilities. Under ``torchrun`` every member shares one process
group (:mod:`slowonly_zoo.evaluation.distributed`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..weights.checkpoint import EXPORT_WEIGHTS_FILE
from ..weights.hashing import sha256_file
from .distributed import resolve_device, setup_distributed
from .metrics import compute_metrics
from .runner import DEFAULT_BATCH_VIEWS, EvalResult, evaluate, videos_per_batch
from .scores import SCORES_FILE, write_scores

__all__ = ["verify"]


def _make_dataset(
    entry: Any, ann_file: Path, data_root: Path, fmt: str, sampling: str | None, raw: bool = False
) -> tuple[Any, Callable[[torch.Tensor], torch.Tensor] | None]:
    """``TestDataset`` for ``entry``, and the device-side transform its views need (None: they are ready).

    ``raw``: ask for uint8 views, normalised on the device (used on CUDA).
    """
    from slowonly_zoo.data.dataset import TestDataset

    params = inspect.signature(TestDataset).parameters
    first = next(iter(params))
    kwargs: dict[str, Any] = {}
    transform = None
    if raw and "normalize" in params:
        from slowonly_zoo.data.pipeline import normalize_views

        protocol = entry.protocol
        kwargs["normalize"] = False

        def transform(views: torch.Tensor) -> torch.Tensor:
            return normalize_views(views, protocol)

    if sampling is not None:
        if "sampling" not in params:
            raise ValueError("this version of slowonly_zoo.data has no sampling option; leave --sampling unset")
        kwargs["sampling"] = sampling
    spec = entry if first == "entry" else entry.protocol
    return TestDataset(spec, ann_file, data_root, fmt, **kwargs), transform


def _checkpoint_for(entry: Any, checkpoint: str | Path | None) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"checkpoint {path} does not exist; pass the path of an upstream .pth or an exported file/folder"
            )
        return path
    from slowonly_zoo.weights.sources import fetch_weights

    return Path(fetch_weights(entry))


def verify(
    name: str,
    data_root: str | Path,
    ann_file: str | Path,
    *,
    checkpoint: str | Path | Sequence[str | Path] | None = None,
    fmt: str = "auto",
    out: str | Path | None = None,
    num_workers: int | None = None,
    batch_views: int = DEFAULT_BATCH_VIEWS,
    device: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    amp: bool = False,
    sampling: str | None = None,
    tolerance: float | None = None,
    progress: bool = True,
    print_fn: Callable[[str], None] | None = print,
    model_factory: Callable[[Any, Path], nn.Module] | None = None,
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
        fmt: ``"video"``, ``"rawframes"`` or ``"auto"`` (per item: a folder is a frame folder, a file a video).
        sampling: the data layer's test-clip sampling option (None: the spec's, mmaction2 0.x).
        tolerance: most |measured − reported| (percentage points) that still passes; default
            :data:`slowonly_zoo.evaluation.report.DEFAULT_TOLERANCE`.
        model_factory: builds the model from (entry, checkpoint path); default ``slowonly_zoo.create_model``.
        normalize_on_device: workers hand over uint8 views, normalised on the device (same numbers, 4x fewer
            bytes to move); default: on CUDA only.
        compile: run the model through ``torch.compile`` with weight freezing, on batches padded to one fixed
            size so it compiles once (about a minute up front; worth it for more than a few dozen videos).
        Other arguments: as :func:`slowonly_zoo.evaluation.runner.evaluate`.
    """
    from slowonly_zoo.index import get_model_info

    from . import report as report_mod

    entry = get_model_info(name)
    out_dir = Path(out) if out is not None else Path.cwd() / f"verify-{entry.name}"
    tol = report_mod.DEFAULT_TOLERANCE if tolerance is None else tolerance
    common = dict(
        num_workers=num_workers,
        batch_views=batch_views,
        device=device,
        limit=limit,
        strict=strict,
        amp=amp,
        sampling=sampling,
        tolerance=tol,
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
            return _verify_fusion(entry, Path(data_root), Path(ann_file), checkpoint, fmt, out_dir, print_fn, common)
        result = _verify_single(entry, Path(data_root), Path(ann_file), checkpoint, fmt, out_dir, common)
        return _finish_report(result, entry, report_mod, print_fn, tol)
    finally:
        ctx.close()


def _verify_single(
    entry: Any, data_root: Path, ann_file: Path, checkpoint: Any, fmt: str, out_dir: Path, opts: dict[str, Any]
) -> EvalResult:
    if entry.protocol is None:
        raise ValueError(f"{entry.name} has no test protocol in the index, so it cannot be verified")
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} does not exist; pass the test list with --ann-file")
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root {data_root} is not a folder; pass the dataset folder with --data-root")
    ckpt = _checkpoint_for(entry, checkpoint)
    ckpt_sha = sha256_file(ckpt / EXPORT_WEIGHTS_FILE if ckpt.is_dir() else ckpt)
    dev = resolve_device(opts["device"])
    raw = dev.type == "cuda" if opts["normalize_on_device"] is None else opts["normalize_on_device"]
    dataset, transform = _make_dataset(entry, ann_file, data_root, fmt, opts["sampling"], raw=raw)
    if opts["model_factory"] is not None:
        model = opts["model_factory"](entry, ckpt)
    else:
        from slowonly_zoo.factory import create_model
        from slowonly_zoo.models.fuse import fuse_batchnorm

        # BatchNorm folded into the convolutions: same outputs to float rounding, less work per view
        model = fuse_batchnorm(create_model(entry.name, pretrained=False, checkpoint_path=ckpt), inplace=True)
    if opts["compile"]:
        from slowonly_zoo.models.fuse import FixedBatch, compile_for_inference, views_per_forward

        # one input shape, so it compiles once: the engine's forward size, padded when a batch ends short
        views = entry.protocol.num_views
        batch = videos_per_batch(dataset, opts["batch_views"], views) * views
        model = FixedBatch(compile_for_inference(model.to(dev)), views_per_forward(dev, batch))
    protocol = entry.to_dict()["protocol"]
    run_info = {
        "model": entry.name,
        "checkpoint_sha256": ckpt_sha,
        "ann_file_sha256": sha256_file(ann_file),
        "format": fmt,
        "sampling": opts["sampling"] or "default",
        "protocol": protocol,
    }
    result = evaluate(
        model,
        dataset,
        out_dir=out_dir,
        batch_views=opts["batch_views"],
        num_workers=opts["num_workers"],
        device=dev,
        amp=opts["amp"],
        limit=opts["limit"],
        strict=opts["strict"],
        progress=opts["progress"],
        run_info=run_info,
        views_per_video=entry.protocol.num_views,
        transform=transform,
    )
    result.settings.update(
        checkpoint=str(ckpt),
        checkpoint_sha256=ckpt_sha,
        ann_file=str(ann_file),
        data_root=str(data_root),
        format=fmt,
        sampling=opts["sampling"] or "default",
        protocol=protocol,
        limit=opts["limit"],
    )
    return result


def _verify_fusion(
    entry: Any,
    data_root: Path,
    ann_file: Path,
    checkpoint: Any,
    fmt: str,
    out_dir: Path,
    print_fn: Callable[[str], None] | None,
    opts: dict[str, Any],
) -> EvalResult:
    from slowonly_zoo.index import get_model_info

    from . import report as report_mod
    from .fusion import fuse_tables

    members = [get_model_info(m) for m in entry.members]
    if checkpoint is None:
        ckpts: list[Any] = [None] * len(members)
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
        res = _verify_single(member, data_root, ann_file, ckpt, fmt, out_dir / member.name, opts)
        member_results.append(_finish_report(res, member, report_mod, print_fn, opts["tolerance"]))
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
    return _finish_report(result, entry, report_mod, print_fn, opts["tolerance"])


def _finish_report(result: EvalResult, entry: Any, report_mod: Any, print_fn: Any, tolerance: float) -> EvalResult:
    rank = int(os.environ.get("RANK", "0"))
    result.report = report_mod.build_report(result, entry, tolerance=tolerance)
    if rank == 0:
        result.results_path = report_mod.write_report(result.report, result.out_dir)
        if print_fn is not None:
            print_fn(report_mod.format_summary(result.report))
    else:
        result.results_path = result.out_dir / report_mod.RESULTS_FILE
    return result
