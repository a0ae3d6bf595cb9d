"""Classify user videos with a zoo model (the logic behind ``slowonly-zoo predict``), and what prediction shares
with feature extraction (:mod:`slowonly_zoo.features`) and timing (:mod:`slowonly_zoo.benchmark`): model loading,
the test protocol for user inputs, input checks, expanding command-line inputs, and running views through the model.

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
"""

from __future__ import annotations

import dataclasses
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
    "VIDEO_EXTENSIONS",
    "ClassScore",
    "InferenceError",
    "Prediction",
    "Predictor",
    "check_source",
    "default_device",
    "expand_inputs",
    "forward_views",
    "inference_protocol",
    "input_pipeline",
    "load_model",
    "predict",
]

#: File extensions treated as videos when a folder of videos or a list is expanded.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
    ".ts",
)
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
    optimize: bool = True,
) -> tuple[nn.Module, ModelEntry]:
    """The model in eval mode on ``device`` and its index entry.

    A name builds the model with :func:`slowonly_zoo.create_model`: weights from ``checkpoint`` (an upstream
    ``.pth``, a ``.safetensors`` or an export folder) when given, else the verified released weights
    (``pretrained``; ``pretrained=False`` gives random weights, for timing only), and with ``optimize`` puts it in
    its inference form (:func:`~slowonly_zoo.models.fuse.optimize_for_inference`: BatchNorm folded, channels-last;
    same outputs to float rounding). A model object is used as it is.
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
        if optimize:
            from .models.fuse import optimize_for_inference

            model = optimize_for_inference(model, inplace=True)
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


def input_pipeline(protocol: TestProtocol, entry: ModelEntry, source: Path) -> Any:
    """The :class:`~slowonly_zoo.data.pipeline.TestPipeline` that turns ``source`` into views under ``protocol``,
    after :func:`check_source` (frame folders get the file name template their frames follow)."""
    from .data.pipeline import TestPipeline

    check_source(entry, source)
    return TestPipeline(_with_folder_template(protocol, entry, source))


def forward_views(
    model: nn.Module,
    views: torch.Tensor,
    device: torch.device,
    batch_views: int,
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``fn`` (the model's forward, or part of it) over ``views`` on ``device``, in inference mode, at most
    ``batch_views`` at a time (one at a time on CPU, which is faster there: see
    :func:`~slowonly_zoo.models.fuse.views_per_forward`); the float32 outputs concatenated along the first
    dimension."""
    from .models.fuse import views_per_forward

    step = views_per_forward(device, batch_views)
    outs = []
    with torch.inference_mode():
        for start in range(0, views.shape[0], step):
            chunk = views[start : start + step].to(device, non_blocking=True)
            outs.append(fn(chunk.contiguous(memory_format=torch.channels_last_3d)).float().contiguous())
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
        views = input_pipeline(self.protocol, self.entry, path)(path)
        logits = forward_views(self.model, views, self.device, self.batch_views, self.model)
        probs = torch.softmax(logits, dim=-1).mean(dim=0)
        return probs.cpu().numpy().astype(np.float64), int(views.shape[0])

    def predict_one(self, source: str | os.PathLike[str], topk: int = 5) -> Prediction:
        """Top-``topk`` named classes of one input (see :class:`Prediction`)."""
        t0 = time.perf_counter()
        probs, num_views = self.probabilities(source)
        named = len(self.labels) if self.labels else len(probs)
        ranked = np.argsort(-probs[:named], kind="stable")[: max(1, int(topk))]
        top = [ClassScore(int(i), self.labels[i] if i < len(self.labels) else None, float(probs[i])) for i in ranked]
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
