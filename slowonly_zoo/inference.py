"""Classify user videos and extract features with a zoo model (the logic behind ``slowonly-zoo predict/extract``).

Inputs are video files (any container and codec PyAV reads) or frame folders (``img_00001.jpg``... for RGB models,
``x_00001.jpg``/``y_00001.jpg``... for flow models). Every input goes through the model's own upstream test
pipeline (:class:`slowonly_zoo.data.pipeline.TestPipeline`) unless asked otherwise:

* ``clips=None``: the full test protocol (10 clips x 3 crops = 30 views for most models), softmax per view, then
  the mean over views (upstream's ``average_clips='prob'``). These are the numbers ``verify`` measures.
* ``clips=N``: ``N`` uniformly sampled clips with a single centre crop (``clips=1`` is the fast mode: one view).

Two deliberate differences from the test protocol, both for user videos only:

* The Kinetics-600/700 test protocols have no resize, because their test videos were stored at short side 256.
  User videos are resized so the short side equals the crop size (256), as those test videos were.
* GYM99 models have 400-way heads but only 99 named classes. Probabilities are the upstream 400-way softmax
  (averaged over views, so they match ``verify``), and the top-k ranks only the 99 named classes; the
  probability mass on the 301 unnamed outputs is reported as ``unlabelled_prob``.

Feature extraction (:func:`extract`) writes one ``.safetensors`` (or ``.npy``) file per input, skips inputs whose
output already exists (so an interrupted run resumes), and shards the inputs over ``torchrun`` ranks (``RANK`` /
``WORLD_SIZE``): each rank writes its own files, no process group is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .index import ModelEntry, TestProtocol, get_model_info

__all__ = [
    "FEATURE_LAYERS",
    "VIDEO_EXTENSIONS",
    "ClassScore",
    "ExtractSummary",
    "InferenceError",
    "Prediction",
    "Predictor",
    "benchmark",
    "check_source",
    "default_device",
    "distributed_shard",
    "expand_inputs",
    "extract",
    "inference_protocol",
    "load_model",
    "predict",
    "sliding_window_indices",
    "synthetic_video",
]

#: File extensions treated as videos when a folder of videos or a list is expanded.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".ts",
)
#: What :func:`extract` can save: the pooled 2048-d embedding or the last stage's feature maps.
FEATURE_LAYERS: tuple[str, ...] = ("pool", "layer4")
_FEATURE_FORMATS = ("safetensors", "npy")
_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


class InferenceError(ValueError):
    """A user-facing problem with the inputs or options (wrong modality, bad list file, ...)."""


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """One class of a top-k list: head output ``index``, its ``label`` (None for unnamed outputs) and ``prob``."""

    index: int
    label: str | None
    prob: float


@dataclass
class Prediction:
    """The classification of one input.

    ``probs`` is the full averaged probability vector (``num_classes``), ``topk`` the best named classes in
    decreasing order. ``unlabelled_prob`` is the probability mass on head outputs without a class name (GYM99's
    400-way heads), 0 otherwise.
    """

    video: str
    topk: list[ClassScore]
    probs: np.ndarray = field(repr=False)
    num_views: int
    unlabelled_prob: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{"video", "topk": [{"index", "label", "prob"}], "num_views", ...}``: JSON-ready."""
        out: dict[str, Any] = {
            "video": self.video,
            "topk": [dataclasses.asdict(c) for c in self.topk],
            "num_views": self.num_views,
        }
        if self.unlabelled_prob:
            out["unlabelled_prob"] = self.unlabelled_prob
        return out


# --------------------------------------------------------------------------------------------------
# models, devices, protocols
# --------------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """``cuda:$LOCAL_RANK`` (or ``cuda``) when a GPU is available, else ``cpu``."""
    if torch.cuda.is_available():
        local = os.environ.get("LOCAL_RANK")
        return torch.device(f"cuda:{int(local)}" if local is not None else "cuda")
    return torch.device("cpu")


def _entry_of(model: nn.Module) -> ModelEntry:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    entry = cfg.get("entry")
    if isinstance(entry, ModelEntry):
        return entry
    name = cfg.get("architecture")
    if name:
        return get_model_info(name)
    raise InferenceError(
        "this model does not say which zoo entry it was built from (model.pretrained_cfg is empty); "
        "create it with slowonly_zoo.create_model(...) or pass entry=get_model_info(name)"
    )


def load_model(
    model_or_name: nn.Module | str,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    entry: ModelEntry | None = None,
    pretrained: bool = True,
) -> tuple[nn.Module, ModelEntry]:
    """The model in eval mode on ``device`` and its index entry.

    A name builds the model with :func:`slowonly_zoo.create_model`: weights from ``checkpoint`` (an upstream
    ``.pth``, a ``.safetensors`` or an export folder) when given, else the verified released weights
    (``pretrained``; ``pretrained=False`` gives random weights, for timing only).
    """
    dev = torch.device(device) if device is not None else default_device()
    if isinstance(model_or_name, str):
        entry = get_model_info(model_or_name)
        if entry.is_ensemble:
            raise InferenceError(
                f"{entry.name} fuses the scores of {' and '.join(entry.members)} (RGB frames and optical flow); "
                "run predict with each member on its own input, or use `slowonly-zoo verify` on the dataset"
            )
        from .factory import create_model

        model = create_model(
            entry.name,
            pretrained=pretrained and checkpoint is None,
            checkpoint_path=checkpoint,
            device=dev,
        )
    else:
        model = model_or_name
        entry = entry if entry is not None else _entry_of(model)
        if checkpoint is not None:
            raise InferenceError("pass either a model object or a checkpoint path, not both")
        model.to(dev)
    model.eval()
    return model, entry


def inference_protocol(entry: ModelEntry, clips: int | None = None) -> TestProtocol:
    """The test protocol :func:`predict` uses for user inputs.

    ``clips=None`` keeps the entry's protocol (with a short-side resize to the crop size where the protocol has
    none, see the module docstring); ``clips=N`` samples ``N`` clips with one centre crop.
    """
    protocol = entry.protocol
    if protocol is None:
        raise InferenceError(f"{entry.name} has no test protocol in the index, so it cannot run on videos")
    if protocol.resize_short is None:
        protocol = dataclasses.replace(protocol, resize_short=protocol.crop_size)
    if clips is not None:
        if int(clips) < 1:
            raise InferenceError(f"--clips must be 1 or more, got {clips}")
        protocol = dataclasses.replace(protocol, num_clips=int(clips), crop="center")
    return protocol


def check_source(entry: ModelEntry, source: str | os.PathLike[str]) -> None:
    """Refuse an input the model cannot use (missing, RGB video for a flow model, folder without frames) with a
    message that says what it needs instead (:class:`InferenceError`). Cheap: nothing is decoded."""
    source = Path(source)
    if not source.exists():
        raise InferenceError(f"{source} does not exist (expected a video file or a frame folder)")
    modality = entry.architecture.modality if entry.architecture else "rgb"
    if modality == "flow":
        if not source.is_dir():
            raise InferenceError(
                f"{entry.name} is an optical-flow model: it needs a folder of flow frames (x_00001.jpg, y_00001.jpg, "
                f"... as written by mmaction2's TV-L1 frame extraction), not the RGB video {source}. Use an RGB model "
                "(see `slowonly-zoo list --modality rgb`) for video files"
            )
        if not any(p.name.startswith("x_") for p in source.iterdir()):
            raise InferenceError(
                f"{source} holds no x_*.jpg flow frames; {entry.name} is an optical-flow model and needs a folder of "
                "x_00001.jpg / y_00001.jpg files"
            )
    elif source.is_dir():
        names = [p.name for p in source.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES]
        if not names:
            raise InferenceError(f"{source} is a folder without JPEG frames (expected img_00001.jpg, ...)")


def _with_folder_template(protocol: TestProtocol, entry: ModelEntry, source: Path) -> TestProtocol:
    """For an RGB frame folder, use whichever known file name template its files follow."""
    if not source.is_dir() or protocol.normalize == "flow":
        return protocol
    candidates = [protocol.filename_tmpl] if protocol.filename_tmpl else []
    candidates += ["img_{:05}.jpg", "{:05}.jpg", "img_{:05d}.png", "{:06}.jpg"]
    for tmpl in candidates:
        if tmpl and (source / tmpl.format(1)).is_file():
            return dataclasses.replace(protocol, filename_tmpl=tmpl, start_index=1, data_format="rawframes")
    for tmpl in candidates:
        if tmpl and (source / tmpl.format(0)).is_file():
            return dataclasses.replace(protocol, filename_tmpl=tmpl, start_index=0, data_format="rawframes")
    raise InferenceError(
        f"{source}: cannot find the first frame; name frames img_00001.jpg, img_00002.jpg, ... "
        f"(or {entry.name}'s own template {protocol.filename_tmpl!r}), numbered from 1"
    )


def _pipeline(protocol: TestProtocol, entry: ModelEntry, source: Path) -> Any:
    from .data.pipeline import TestPipeline

    check_source(entry, source)
    return TestPipeline(_with_folder_template(protocol, entry, source))


def _forward_views(model: nn.Module, views: torch.Tensor, device: torch.device, batch_views: int,
                   fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    outs = []
    with torch.inference_mode():
        for start in range(0, views.shape[0], batch_views):
            outs.append(fn(views[start : start + batch_views].to(device, non_blocking=True)).float())
    return torch.cat(outs)


# --------------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------------


class Predictor:
    """A loaded model plus its inference protocol; call :meth:`predict_one` per input.

    Args: as :func:`predict`. ``batch_views`` caps how many views go through the network at once.
    """

    def __init__(
        self,
        model_or_name: nn.Module | str,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        clips: int | None = None,
        device: str | torch.device | None = None,
        entry: ModelEntry | None = None,
        batch_views: int = 30,
    ) -> None:
        self.model, self.entry = load_model(model_or_name, checkpoint=checkpoint, device=device, entry=entry)
        self.device = next(self.model.parameters()).device
        self.protocol = inference_protocol(self.entry, clips)
        self.labels = self.entry.labels
        self.batch_views = max(1, int(batch_views))

    def probabilities(self, source: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
        """Averaged class probabilities (softmax per view, mean over views) and the number of views."""
        path = Path(source)
        views = _pipeline(self.protocol, self.entry, path)(path)
        logits = _forward_views(self.model, views, self.device, self.batch_views, self.model)
        probs = torch.softmax(logits, dim=-1).mean(dim=0)
        return probs.cpu().numpy().astype(np.float64), int(views.shape[0])

    def predict_one(self, source: str | os.PathLike[str], topk: int = 5) -> Prediction:
        """Top-``topk`` named classes of one input (see :class:`Prediction`)."""
        t0 = time.perf_counter()
        probs, num_views = self.probabilities(source)
        named = len(self.labels) if self.labels else len(probs)
        ranked = np.argsort(-probs[:named], kind="stable")[: max(1, int(topk))]
        top = [
            ClassScore(int(i), self.labels[i] if i < len(self.labels) else None, float(probs[i])) for i in ranked
        ]
        unlabelled = float(probs[named:].sum()) if self.labels else 0.0
        return Prediction(str(source), top, probs, num_views, unlabelled, time.perf_counter() - t0)


def predict(
    model_or_name: nn.Module | str,
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    topk: int = 5,
    clips: int | None = None,
    device: str | torch.device | None = None,
) -> list[Prediction]:
    """Classify videos (or frame folders) with a zoo model.

    Args:
        model_or_name: a model name (built with the verified released weights, or ``checkpoint``) or a model from
            :func:`slowonly_zoo.create_model`.
        videos: one path or a list of paths: video files or frame folders.
        checkpoint: a local upstream ``.pth`` / ``.safetensors`` / export folder instead of the released weights.
        topk: how many classes to return per video.
        clips: None = the model's full test protocol; ``N`` = ``N`` clips with a centre crop (1 = fast mode).
        device: default: the GPU when there is one.

    Raises :class:`InferenceError` for inputs the model cannot use, and the data layer's
    ``VideoDecodeError`` / ``FrameReadError`` (naming the file and the decoder's reason) for unreadable ones.
    """
    items = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if isinstance(model_or_name, str):  # fail fast on unusable inputs, before fetching any weights
        entry = get_model_info(model_or_name)
        if not entry.is_ensemble:
            for item in items:
                check_source(entry, item)
    predictor = Predictor(model_or_name, checkpoint=checkpoint, clips=clips, device=device)
    return [predictor.predict_one(v, topk) for v in items]


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in _FRAME_SUFFIXES for p in path.iterdir())


def _read_list(list_file: Path, root: Path | None) -> list[Path]:
    base = root if root is not None else list_file.parent
    out: list[Path] = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split()[0]  # annotation files ("path label", "frame_dir total label") work as lists too
        p = Path(first)
        out.append(p if p.is_absolute() else base / p)
    if not out:
        raise InferenceError(f"{list_file} lists no videos (one path per line expected)")
    return out


def expand_inputs(items: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Turn command-line inputs into a list of video files / frame folders.

    * a ``.txt``/``.lst``/``.list`` file: one path per line (the first field, so annotation files work too),
      relative to ``root`` or else to the list file's folder;
    * a frame folder (holds ``.jpg``/``.png`` files): itself;
    * any other folder: the video files directly inside it (sorted);
    * anything else: itself.
    """
    root_path = Path(root) if root is not None else None
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_file() and path.suffix.lower() in (".txt", ".lst", ".list"):
            out.extend(_read_list(path, root_path))
        elif path.is_dir() and not _is_frame_folder(path):
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise InferenceError(
                    f"{path} holds neither video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) nor frames"
                )
            out.extend(found)
        else:
            out.append(path)
    return out


def distributed_shard(items: Sequence[Any], rank: int | None = None, world_size: int | None = None) -> list[Any]:
    """This process's share of ``items``: every ``world_size``-th item from ``rank`` (``RANK``/``WORLD_SIZE`` of
    ``torchrun`` by default; everything in a plain run)."""
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
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


def sliding_window_indices(total_frames: int, clip_len: int, frame_interval: int, stride: int,
                           start_index: int = 0) -> np.ndarray:
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


def _window_pipeline(base: Any, stride: int) -> Any:
    """A TestPipeline whose clips are sliding windows (one centre crop each) instead of the uniform test clips."""
    from .data.pipeline import TestPipeline

    class _Windows(TestPipeline):
        def frame_indices(self, total_frames: int, start_index: int = 0) -> np.ndarray:
            p = self.protocol
            return sliding_window_indices(total_frames, p.clip_len, p.frame_interval, stride, start_index)

        def views_from_frames(self, clip: Any) -> torch.Tensor:
            n = int(clip.indices.shape[0])
            inner = TestPipeline(dataclasses.replace(self.protocol, num_clips=n), self.sampling, self.normalize)
            return inner.views_from_frames(clip)

    protocol = dataclasses.replace(base.protocol, crop="center")
    return _Windows(protocol, base.sampling, base.normalize, base.fmt)


@dataclass
class ExtractSummary:
    """What :func:`extract` did on this rank: files written, inputs skipped (output present), failures."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1
    seconds: float = 0.0


def _save_features(path: Path, features: torch.Tensor, extra: dict[str, torch.Tensor], meta: dict[str, str],
                   fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "npy":
            with open(tmp, "wb") as fh:
                np.save(fh, features.numpy())
        else:
            from safetensors.torch import save_file

            tensors = {"features": features.contiguous(), **{k: v.contiguous() for k, v in extra.items()}}
            save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written output behind
    finally:
        if tmp.exists():
            tmp.unlink()


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
) -> ExtractSummary:
    """Extract features per input and save them under ``out_dir``, one file per input.

    Args:
        videos: video files / frame folders (list files and folders of videos are expanded by
            :func:`expand_inputs` in the CLI; here each item is one input).
        layer: ``"pool"``: the pooled 2048-d clip embedding (the classifier's input); ``"layer4"``: the last
            stage's feature maps ``(2048, T, h, w)`` per view.
        clip_stride: None: the views of the test protocol (or ``clips``); with ``pool`` they are averaged into one
            2048-d vector per input, with ``layer4`` kept per view. ``S``: sliding-window clips starting every ``S``
            frames, one centre crop each, saved per window (``(num_windows, 2048)`` or ``(num_windows, 2048, T, h,
            w)``) with their first frame in ``clip_starts``.
        clips: as :func:`predict` (ignored with ``clip_stride``).
        fmt: ``"safetensors"`` (tensor ``features``, plus ``clip_starts`` for windows, and string metadata: model,
            layer, source, views) or ``"npy"`` (the features array alone).
        overwrite: recompute inputs whose output exists (default: skip them, so reruns resume).
        rank, world_size: this process's shard (default from ``torchrun``'s environment).
        on_progress: called after each input as ``(input, status, detail)``: status ``"written"`` or ``"skipped"``
            with the output path as detail, or ``"failed"`` with the reason.

    Output files mirror the inputs' paths below their common folder, with the suffix ``.safetensors``/``.npy``.
    Unreadable inputs are recorded in ``summary.failed`` and the rest continues.
    """
    if layer not in FEATURE_LAYERS:
        raise InferenceError(f"unknown layer {layer!r}; choose one of {', '.join(FEATURE_LAYERS)}")
    if fmt not in _FEATURE_FORMATS:
        raise InferenceError(f"unknown feature format {fmt!r}; choose one of {', '.join(_FEATURE_FORMATS)}")
    items = [Path(videos)] if isinstance(videos, (str, os.PathLike)) else [Path(v) for v in videos]
    if not items:
        raise InferenceError("no inputs to extract features from")
    names = _output_names(items, "." + fmt)
    out_root = Path(out_dir)
    pairs = distributed_shard(list(zip(items, names)), rank, world_size)
    summary = ExtractSummary(rank=int(os.environ.get("RANK", 0)) if rank is None else rank,
                             world_size=int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size)
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

    def features_of(x: torch.Tensor) -> torch.Tensor:
        maps = model.forward_features(x)
        return maps if layer == "layer4" else model.forward_head(maps, pre_logits=True)

    for source, target in todo:
        try:
            pipeline = _pipeline(protocol, entry, source)
            if clip_stride is not None:
                pipeline = _window_pipeline(pipeline, int(clip_stride))
            clip = pipeline.decode(source)
            views = pipeline.views_from_frames(clip)
            feats = _forward_views(model, views, dev, max(1, int(batch_views)), features_of).cpu()
            extra: dict[str, torch.Tensor] = {}
            if clip_stride is not None:
                start = pipeline.start_index(pipeline.source_format(source))
                extra["clip_starts"] = torch.from_numpy(np.ascontiguousarray(clip.indices[:, 0] - start))
            elif layer == "pool":
                feats = feats.mean(dim=0)
            meta = {
                "model": entry.name,
                "layer": layer,
                "source": str(source),
                "num_views": str(int(views.shape[0])),
                "clip_stride": str(clip_stride) if clip_stride is not None else "",
                "protocol": json.dumps(dataclasses.asdict(pipeline.protocol)),
                "total_frames": str(clip.total_frames),
            }
            _save_features(target, feats, extra, meta, fmt)
        except (InferenceError, OSError, RuntimeError, ValueError) as exc:
            summary.failed.append((str(source), str(exc)))
            if on_progress:
                on_progress(str(source), "failed", str(exc))
            continue
        summary.written.append(target)
        if on_progress:
            on_progress(str(source), "written", str(target))
    summary.seconds = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------------------------------
# benchmark
# --------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_video(path: str | os.PathLike[str], *, frames: int = 300, width: int = 340, height: int = 256,
                    fps: int = 30) -> Path:
    """Write a moving-pattern MPEG-4 video (for end-to-end timing when no real video is given)."""
    import av

    path = Path(path)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def benchmark(
    name: str,
    *,
    device: str | torch.device | None = None,
    iters: int | None = None,
    warmup: int = 5,
    clips: int | None = None,
    crop_size: int | None = None,
    video: str | os.PathLike[str] | None = None,
    e2e_iters: int = 3,
    fuse_bn: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Throughput of a zoo model, measured as upstream's ``tools/analysis/benchmark.py`` does (spec §8).

    Model only: random weights (no checkpoint), batch 1 video = all test views at once (30 views of the full
    protocol), ``iters`` iterations of which the first ``warmup`` (5) are not counted; each timed iteration is
    synchronize, copy the views to the device, forward, softmax-and-mean over views, copy the scores back,
    synchronize. Decoding is excluded. ``videos_per_second = (iters - warmup) / timed seconds`` (upstream also adds
    its last iteration's time twice, which lowers its figure by about 1/(iters - warmup); we do not).

    End to end: ``e2e_iters`` runs of decode + test pipeline + forward + averaging on ``video`` (default: a
    synthetic 340x256, 300-frame MPEG-4 clip), as videos/s.

    ``iters`` defaults to upstream's 200 on a GPU and 10 on a CPU. ``clips`` / ``crop_size`` shrink the views
    (``clips=N``: N clips, one centre crop) to measure something else than upstream's setting; the result says so.
    """
    import tempfile

    entry = get_model_info(name)
    dev = torch.device(device) if device is not None else default_device()
    if iters is None:
        iters = 200 if dev.type == "cuda" else 10
    if warmup < 0 or iters <= warmup:
        raise InferenceError(f"--iters ({iters}) must be larger than --warmup ({warmup})")
    protocol = inference_protocol(entry, clips)
    if crop_size is not None:
        protocol = dataclasses.replace(protocol, crop_size=int(crop_size), resize_short=int(crop_size))
    model, entry = load_model(name, device=dev, pretrained=False)
    if fuse_bn:
        from .models.fuse import fuse_batchnorm

        model = fuse_batchnorm(model, inplace=True)
    c = entry.architecture.in_channels
    shape = (protocol.num_views, c, protocol.clip_len, protocol.crop_size, protocol.crop_size)
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(shape, generator=generator)
    if dev.type == "cuda":
        views = views.pin_memory()
    timed = 0.0
    with torch.inference_mode():
        for i in range(iters):
            _sync(dev)
            t0 = time.perf_counter()
            scores = torch.softmax(model(views.to(dev, non_blocking=True)), dim=-1).mean(dim=0).cpu().numpy()
            _sync(dev)
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                timed += elapsed
            if progress:
                progress(f"iteration {i + 1}/{iters}: {elapsed:.3f} s{' (warm-up)' if i < warmup else ''}")
    assert scores.shape == (entry.num_classes,)
    upstream_setting = clips is None and crop_size is None
    result: dict[str, Any] = {
        "model": entry.name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "weights": "random (as upstream's benchmark)",
        "fuse_bn": fuse_bn,
        "views_per_video": protocol.num_views,
        "input_per_view": list(shape[1:]),
        "iters": iters,
        "warmup": warmup,
        "upstream_setting": upstream_setting,
        "model_videos_per_second": (iters - warmup) / timed,
        "model_seconds_per_video": timed / (iters - warmup),
        "reported_videos_per_second": next((r.inference_time for r in entry.results if r.inference_time), None),
    }
    if e2e_iters > 0:
        with tempfile.TemporaryDirectory(prefix="slowonly-bench-") as tmp:
            if video is None:
                if entry.architecture.modality == "flow":
                    result["end_to_end"] = None
                    result["end_to_end_note"] = "flow models need frame folders; pass --video FOLDER to time them"
                    return result
                source = synthetic_video(Path(tmp) / "synthetic.mp4")
            else:
                source = Path(video)
            pipe = _pipeline(protocol, entry, source)
            t_all = time.perf_counter()
            t_data = 0.0
            with torch.inference_mode():
                for i in range(e2e_iters):
                    t0 = time.perf_counter()
                    v = pipe(source)
                    t_data += time.perf_counter() - t0
                    torch.softmax(model(v.to(dev)), dim=-1).mean(dim=0).cpu()
                    _sync(dev)
                    if progress:
                        progress(f"end-to-end {i + 1}/{e2e_iters}")
            total = time.perf_counter() - t_all
            result["end_to_end"] = {
                "video": str(video) if video is not None else "synthetic 340x256, 300 frames, MPEG-4",
                "iters": e2e_iters,
                "videos_per_second": e2e_iters / total,
                "data_seconds_per_video": t_data / e2e_iters,
            }
    return result


def _cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
