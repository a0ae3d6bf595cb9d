"""Extract features of user videos with a zoo model (the logic behind ``slowonly-zoo extract``).

:func:`extract` runs each input through the model's test pipeline (as :func:`slowonly_zoo.inference.predict`
does, or as sliding-window clips) and writes one ``.safetensors`` (or ``.npy``) file per input. It skips inputs
whose output already exists (so an interrupted run resumes), and shards the inputs over ``torchrun`` ranks
(``RANK`` / ``WORLD_SIZE``): each rank writes its own files, no process group is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from ._fileio import atomic_replace
from .data.pipeline import FramePlan
from .errors import InferenceError
from .inference import inference_protocol, input_pipeline, load_model
from .models import SlowOnly
from .progress import progress_bar
from .runtime import forward_views

__all__ = [
    "FEATURE_LAYERS",
    "ExtractSummary",
    "distributed_shard",
    "extract",
    "npy_companion",
    "sliding_window_indices",
    "sliding_windows",
]

#: What :func:`extract` can save: the pooled 2048-d embedding or the last stage's feature maps.
FEATURE_LAYERS: tuple[str, ...] = ("pool", "layer4")
_FEATURE_FORMATS = ("safetensors", "npy")
T = TypeVar("T")


def distributed_shard(items: Sequence[T], rank: int | None = None, world_size: int | None = None) -> list[T]:
    """This process's share of ``items``: every ``world_size``-th item from ``rank`` (``RANK``/``WORLD_SIZE`` of
    ``torchrun`` by default; everything in a plain run)."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InferenceError(f"bad distributed setting: rank {rank} of world size {world_size}")
    return list(items[rank::world_size])


def _output_names(sources: Sequence[Path], suffix: str) -> list[Path]:
    """Relative output paths mirroring the inputs below their common folder (unique for distinct inputs)."""
    resolved = [Path(os.path.abspath(s)) for s in sources]  # not resolve(): keep the user's (symlink) names
    if len(set(resolved)) != len(resolved):
        dup = sorted({str(s) for s in resolved if resolved.count(s) > 1})
        raise InferenceError(f"the same input is listed more than once: {', '.join(dup[:3])}")
    parents = [str(r.parent) for r in resolved]
    common = Path(os.path.commonpath(parents)) if parents else Path("/")
    out = []
    for r in resolved:
        rel = r.relative_to(common)
        name = rel.name if r.is_dir() else rel.stem
        out.append(rel.parent / (name + suffix))
    return out


# --------------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------------


def sliding_window_indices(
    total_frames: int, clip_len: int, frame_interval: int, stride: int, start_index: int = 0
) -> np.ndarray:
    """Frame indices ``(num_windows, clip_len)`` of clips starting every ``stride`` frames.

    A clip spans ``(clip_len - 1) * frame_interval + 1`` frames; windows start at 0, stride, 2 * stride, ... as long
    as the clip fits. A video shorter than one clip gives one window at 0 whose indices wrap around (as upstream's
    sampler loops short videos).
    """
    if stride < 1:
        raise InferenceError(f"--clip-stride must be 1 or more frames, got {stride}")
    span = (clip_len - 1) * frame_interval + 1
    starts = np.arange(0, max(total_frames - span, 0) + 1, stride, dtype=np.int64)
    inds = starts[:, None] + np.arange(clip_len, dtype=np.int64)[None, :] * frame_interval
    return np.mod(inds, total_frames) + start_index


def sliding_windows(clip_len: int, frame_interval: int, stride: int) -> FramePlan:
    """The frame plan of :func:`sliding_window_indices` (for :class:`~slowonly_zoo.data.pipeline.TestPipeline`'s
    ``frame_plan``): clips of ``clip_len`` frames every ``frame_interval``, starting every ``stride`` frames."""
    if stride < 1:
        raise InferenceError(f"--clip-stride must be 1 or more frames, got {stride}")

    def plan(total_frames: int, start_index: int) -> np.ndarray:
        return sliding_window_indices(total_frames, clip_len, frame_interval, stride, start_index)

    return plan


def _text_name(path: Path) -> str:
    """``path`` as text that can be stored as UTF-8: a file name that is not valid UTF-8 (bytes the file system
    holds, decoded with ``surrogateescape``) keeps its undecodable bytes as ``\\xNN`` escapes. The input itself is
    read by its real name, as ``predict`` reads it."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class ExtractSummary:
    """What :func:`extract` did on this rank: files written, inputs skipped (output present), failures."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1
    seconds: float = 0.0


def npy_companion(path: Path, key: str) -> Path:
    """Where a ``.npy`` output keeps an extra array (``clip_starts``): ``NAME.KEY.npy`` beside ``NAME.npy``."""
    return path.with_name(f"{path.stem}.{key}.npy")


def _save_features(
    path: Path, features: torch.Tensor, extra: dict[str, torch.Tensor], meta: dict[str, str], fmt: str
) -> None:
    """Write one output atomically; any failure to write (no permission, a full disk, a file where a folder
    should be) is an :class:`OSError` naming ``path``, so :func:`extract` records it and goes on."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "npy":  # the companions first: an output that exists is complete, so a resumed run may skip it
            for key, value in extra.items():
                with atomic_replace(npy_companion(path, key)) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, value.numpy())
        with atomic_replace(path) as tmp:  # a killed run never leaves a half-written output behind
            if fmt == "npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, features.numpy())
            else:  # not safetensors' save_file, which leaves a .tmpXXXXXX of its own when killed
                from .weights.checkpoint import save_safetensors

                save_safetensors({"features": features, **extra}, tmp, meta)
    except (OSError, SafetensorError) as exc:  # safetensors reports I/O errors as its own SafetensorError
        raise OSError(f"could not write {path} ({exc}); free some space or choose a writable --out folder") from exc


def extract(
    model_or_name: nn.Module | str,
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    layer: str = "pool",
    clip_stride: int | None = None,
    clips: int | None = None,
    fmt: str = "safetensors",
    device: str | torch.device | None = None,
    batch_views: int = 30,
    overwrite: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    on_progress: Callable[[str, str, str], None] | None = None,
    progress: bool | None = None,
) -> ExtractSummary:
    """Extract features per input and save them under ``out_dir``, one file per input.

    Args:
        videos: video files / frame folders (list files and folders of videos are expanded by
            :func:`slowonly_zoo.inputs.expand_inputs` in the CLI; here each item is one input).
        layer: ``"pool"``: the pooled 2048-d clip embedding (the classifier's input); ``"layer4"``: the last
            stage's feature maps ``(2048, T, h, w)`` per view.
        clip_stride: None: the views of the test protocol (or ``clips``); with ``pool`` they are averaged into one
            2048-d vector per input, with ``layer4`` kept per view. ``S``: sliding-window clips starting every ``S``
            frames, one centre crop each, saved per window (``(num_windows, 2048)`` or ``(num_windows, 2048, T, h,
            w)``) with their first frame in ``clip_starts``.
        clips: as :func:`slowonly_zoo.inference.predict` (ignored with ``clip_stride``).
        fmt: ``"safetensors"`` (tensor ``features``, plus ``clip_starts`` for windows, and string metadata: model,
            layer, source, views) or ``"npy"`` (the features array; with windows also ``NAME.clip_starts.npy``
            beside it, see :func:`npy_companion`).
        overwrite: recompute inputs whose output exists (default: skip them, so reruns resume).
        rank, world_size: this process's shard (default from ``torchrun``'s environment).
        on_progress: called after each input as ``(input, status, detail)``: status ``"written"`` or ``"skipped"``
            with the output path as detail, or ``"failed"`` with the reason.
        progress: a bar over the inputs (None: on a terminal, see :func:`slowonly_zoo.progress.show_progress`).

    Output files mirror the inputs' paths below their common folder, with the suffix ``.safetensors``/``.npy``.
    Unreadable inputs and outputs that cannot be written (read-only or full folder) are recorded in
    ``summary.failed`` and the rest continues.
    """
    if layer not in FEATURE_LAYERS:
        raise InferenceError(f"unknown layer {layer!r}; choose one of {', '.join(FEATURE_LAYERS)}")
    if fmt not in _FEATURE_FORMATS:
        raise InferenceError(f"unknown feature format {fmt!r}; choose one of {', '.join(_FEATURE_FORMATS)}")
    if clip_stride is not None and int(clip_stride) < 1:
        raise InferenceError(f"--clip-stride must be 1 or more frames, got {clip_stride}")
    items = [Path(videos)] if isinstance(videos, (str, os.PathLike)) else [Path(v) for v in videos]
    if not items:
        raise InferenceError("no inputs to extract features from")
    names = _output_names(items, "." + fmt)
    out_root = Path(out_dir)
    pairs = distributed_shard(list(zip(items, names)), rank, world_size)
    summary = ExtractSummary(
        rank=int(os.environ.get("RANK", "0")) if rank is None else rank,
        world_size=int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size,
    )
    todo = []
    for source, name in pairs:
        target = out_root / name
        if target.exists() and not overwrite:
            summary.skipped.append(target)
            if on_progress:
                on_progress(str(source), "skipped", str(target))
        else:
            todo.append((source, target))
    if not todo:
        return summary

    t0 = time.perf_counter()
    model, entry = load_model(model_or_name, checkpoint=checkpoint, device=device)
    dev = next(model.parameters()).device
    protocol = inference_protocol(entry, None if clip_stride is not None else clips)
    frame_plan = None
    if clip_stride is not None:  # sliding windows, one centre crop each
        protocol = dataclasses.replace(protocol, crop="center")
        frame_plan = sliding_windows(protocol.clip_len, protocol.frame_interval, int(clip_stride))

    if not isinstance(model, SlowOnly):
        raise InferenceError(
            f"extract needs a SlowOnly model (its forward_features / forward_head), got {type(model).__name__}; "
            "pass a model name or a model from slowonly_zoo.create_model"
        )
    net = model

    def features_of(x: torch.Tensor) -> torch.Tensor:
        maps = net.forward_features(x)
        return maps if layer == "layer4" else net.forward_head(maps, pre_logits=True)

    bar = progress_bar(total=len(todo), desc="extract", unit="video", progress=progress)
    for source, target in todo:
        bar.update(0)
        try:
            pipeline = input_pipeline(protocol, entry, source, frame_plan)
            clip, views = pipeline.run(source)
            feats = forward_views(features_of, views, dev, max(1, int(batch_views))).cpu()
            if not bool(torch.isfinite(feats).all()):  # a NaN in the weights or the input: never saved as features
                raise InferenceError(
                    f"{source}: the features are not finite (NaN or infinite); check the checkpoint and the input"
                )
            extra: dict[str, torch.Tensor] = {}
            if clip_stride is not None:
                extra["clip_starts"] = torch.from_numpy(np.ascontiguousarray(clip.indices[:, 0] - clip.start_index))
            elif layer == "pool":
                feats = feats.mean(dim=0)
            meta = {
                "model": entry.name,
                "layer": layer,
                "source": _text_name(source),
                "num_views": str(int(views.shape[0])),
                "clip_stride": str(clip_stride) if clip_stride is not None else "",
                "protocol": json.dumps(dataclasses.asdict(pipeline.protocol)),
                "total_frames": str(clip.total_frames),
            }
            _save_features(target, feats, extra, meta, fmt)
        except (InferenceError, OSError, RuntimeError, ValueError) as exc:
            summary.failed.append((str(source), str(exc)))
            bar.update(1)
            if on_progress:
                on_progress(str(source), "failed", str(exc))
            continue
        summary.written.append(target)
        bar.update(1)
        if on_progress:
            on_progress(str(source), "written", str(target))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
