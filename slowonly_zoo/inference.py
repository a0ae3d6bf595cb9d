"""Classify user videos with a zoo model (the logic behind ``slowonly-zoo predict``), and what prediction shares
with feature extraction (:mod:`slowonly_zoo.features`) and timing (:mod:`slowonly_zoo.benchmark`): model loading,
the test protocol for user inputs, input checks, and the input pipeline. Running views through the model is
:func:`slowonly_zoo.runtime.forward_views`; expanding command-line inputs (list files, folders of videos) is
:mod:`slowonly_zoo.inputs`.

Inputs are video files (any container and codec PyAV reads) or frame folders (``img_00001.jpg``... for RGB models,
``x_00001.jpg``/``y_00001.jpg``... for flow models). Every input goes through the model's own upstream test
pipeline (:class:`slowonly_zoo.data.pipeline.TestPipeline`) unless asked otherwise:

* ``clips=None``: the full test protocol (10 clips x 3 crops = 30 views for most models), softmax per view, then
  the mean over views (upstream's ``average_clips='prob'``). These are the numbers ``verify`` measures. FAIR's
  entries use their own protocol the same way (PySlowFast's frame sampling and crops; sigmoid scores and the
  maximum over views for Charades, whose classes are not exclusive; the sum over views of the Kinetics and SSv2
  models is shown divided by the number of views, so scores stay in [0, 1]; see :mod:`slowonly_zoo.models.ensemble`).
* ``clips=N``: ``N`` clips with a single centre crop (``clips=1`` is the fast mode: one view), spread as the
  entry's sampling spreads them (for PySlowFast's sampling a single clip starts at the first frame, as there).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.formats import FRAME_SUFFIXES
from .data.pipeline import FramePlan, TestPipeline
from .data.rawframes import find_rgb_template
from .data.threads import one_ahead
from .errors import InferenceError
from .index import ModelEntry, TestProtocol, get_model_info
from .models.ensemble import combine_views, outputs_probabilities, view_scores
from .progress import progress_bar
from .runtime import amp_dtype_name, check_amp, forward_views, resolve_device

__all__ = [
    "ClassScore",
    "InferenceError",
    "Prediction",
    "Predictor",
    "check_source",
    "inference_protocol",
    "input_pipeline",
    "load_model",
    "predict",
]


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

    ``probs`` is the full combined score vector (``num_classes``; the entry's view ensemble, see the module
    docstring), ``topk`` the best named classes in decreasing order. ``unlabelled_prob`` is the probability mass on
    head outputs without a class name (GYM99's 400-way heads), 0 otherwise.
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


def _entry_of(model: nn.Module) -> ModelEntry:
    """The entry a model from ``create_model`` was built from (``pretrained_cfg['architecture']``), refused when
    the model no longer takes that entry's input (another channel count: its test protocol does not fit)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture")
    if not name:
        raise InferenceError(
            "this model does not say which zoo entry it was built from (model.pretrained_cfg is empty); "
            "create it with slowonly_zoo.create_model(...) or pass entry=get_model_info(name)"
        )
    entry = get_model_info(name)
    expected = entry.architecture.in_channels if entry.architecture else None
    in_chans = getattr(model, "in_channels", expected)
    if in_chans != expected:
        raise InferenceError(
            f"this model takes {in_chans} input channels but the test protocol of {entry.name} is for "
            f"{expected}; pass entry= an index entry whose protocol fits the model"
        )
    return entry


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
    dev = resolve_device(device)
    if isinstance(model_or_name, str):
        from .factory import check_model_name, create_model_for_entry

        # a file path as the name is refused: it would not be read
        check_model_name(model_or_name, checkpoint_given=checkpoint is not None)
        entry = get_model_info(model_or_name)
        if entry.is_ensemble:
            raise InferenceError(
                f"{entry.name} fuses the scores of {' and '.join(entry.members)} (RGB frames and optical flow); "
                "run predict with each member on its own input, or use `slowonly-zoo verify` on the dataset"
            )
        model: nn.Module = create_model_for_entry(
            entry,
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
        names = [p.name for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
        if not names:
            raise InferenceError(f"{source} is a folder without JPEG frames (expected img_00001.jpg, ...)")


def _with_folder_template(protocol: TestProtocol, entry: ModelEntry, source: Path) -> TestProtocol:
    """For an RGB frame folder, use whichever known file name template its files follow."""
    if not source.is_dir() or protocol.normalize == "flow":
        return protocol
    found = find_rgb_template(source, protocol.filename_tmpl)
    if found is None:
        raise InferenceError(
            f"{source}: cannot find the first frame; name frames img_00001.jpg, img_00002.jpg, ... "
            f"(or {entry.name}'s own template {protocol.filename_tmpl!r}), numbered from 1"
        )
    tmpl, start = found
    return dataclasses.replace(protocol, filename_tmpl=tmpl, start_index=start, data_format="rawframes")


def input_pipeline(
    protocol: TestProtocol, entry: ModelEntry, source: Path, frame_plan: FramePlan | None = None
) -> TestPipeline:
    """The :class:`~slowonly_zoo.data.pipeline.TestPipeline` that turns ``source`` into views under ``protocol``
    (and ``frame_plan``, default: the protocol's test clips), after :func:`check_source` (frame folders get the
    file name template their frames follow)."""
    check_source(entry, source)
    return TestPipeline(_with_folder_template(protocol, entry, source), frame_plan=frame_plan)


# --------------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------------


class Predictor:
    """A loaded model plus its inference protocol; call :meth:`predict_one` per input.

    Args: as :func:`predict`. ``batch_views`` caps how many views go through the network at once; ``progress``:
    a bar over each input's views (None: on a terminal, see :func:`slowonly_zoo.progress.show_progress`).
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
        progress: bool | None = None,
        amp: bool = False,
    ) -> None:
        self.progress = progress
        self.amp = bool(amp)
        check_amp(resolve_device(device), self.amp)  # before loading: bf16 the CPU would emulate is refused
        self.model, self.entry = load_model(model_or_name, checkpoint=checkpoint, device=device, entry=entry)
        self.device = next(self.model.parameters()).device
        self.dtype = amp_dtype_name(self.amp)
        self.protocol = inference_protocol(self.entry, clips)
        from .factory import class_names_of

        # the names of the model's own head (none for a replaced head), never read back from a model they no
        # longer fit; an entry passed explicitly names a model without names of the same head size
        self.labels = class_names_of(self.model, entry)
        self.batch_views = max(1, int(batch_views))
        self.outputs_probabilities = outputs_probabilities(self.model)  # a 'pyslowfast' head: no second softmax

    def views_of(self, source: str | os.PathLike[str]) -> torch.Tensor:
        """The input's test views (V, C, T, H, W) under this predictor's protocol (decoding, no model)."""
        path = Path(source)
        return input_pipeline(self.protocol, self.entry, path)(path)

    def probabilities(
        self, source: str | os.PathLike[str], views: torch.Tensor | None = None
    ) -> tuple[np.ndarray, int]:
        """Combined class scores (the protocol's activation per view, its view ensemble over views; mmaction2's:
        softmax, mean) and the number of views. ``views``: the source's views when already decoded."""
        path = Path(source)
        views = self.views_of(path) if views is None else views
        n = int(views.shape[0])
        with progress_bar(total=n, desc=path.name, unit="view", leave=False, progress=self.progress) as bar:
            logits = forward_views(self.model, views, self.device, self.batch_views, amp=self.amp, on_chunk=bar.update)
        scores = view_scores(logits, self.protocol.score_activation, self.outputs_probabilities)
        probs = combine_views(scores, self.protocol.view_ensemble)
        if not bool(torch.isfinite(probs).all()):  # never rank NaNs: a broken checkpoint or input is an error
            raise InferenceError(
                f"{path}: the model's scores are not finite (NaN or infinite); check the checkpoint and the input"
            )
        return probs.cpu().numpy().astype(np.float64), int(views.shape[0])

    def predict_one(
        self, source: str | os.PathLike[str], topk: int = 5, views: torch.Tensor | None = None
    ) -> Prediction:
        """Top-``topk`` named classes of one input (see :class:`Prediction`); ``views``: already decoded (then
        ``seconds`` leaves the decoding out)."""
        t0 = time.perf_counter()
        probs, num_views = self.probabilities(source, views)
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
    amp: bool = False,
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
        amp: bf16 autocast (CUDA, or a CPU with native bf16; see :func:`slowonly_zoo.runtime.check_amp`).

    Raises :class:`InferenceError` for inputs the model cannot use, and the data layer's
    ``VideoDecodeError`` / ``FrameReadError`` (naming the file and the decoder's reason) for unreadable ones.
    """
    items = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if isinstance(model_or_name, str):  # fail fast on unusable inputs, before fetching any weights
        entry = get_model_info(model_or_name)
        if not entry.is_ensemble:
            for item in items:
                check_source(entry, item)
    predictor = Predictor(model_or_name, checkpoint=checkpoint, clips=clips, device=device, amp=amp)
    # the next input is decoded while the model runs on this one
    return [predictor.predict_one(v, topk, views()) for v, views in one_ahead(predictor.views_of, items)]
