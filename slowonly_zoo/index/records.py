"""The records of the model index: frozen dataclasses for every model, its architecture, test protocol, reported
results and checkpoint. Pure data (standard library only): reading and writing them is :mod:`.schema`, looking
them up is :mod:`.registry`."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ModelIndexError
from .recipes import TrainRecipe

__all__ = [
    "CHECKPOINT_FORMATS",
    "FLOW_MEAN",
    "FLOW_STD",
    "HEAD_MODES",
    "METRICS",
    "MMACTION2_SAMPLINGS",
    "PROTOCOL_SAMPLINGS",
    "PROVENANCES",
    "RGB_MEAN",
    "RGB_STD",
    "SCORE_ACTIVATIONS",
    "VIEW_ENSEMBLES",
    "Architecture",
    "Checkpoint",
    "ModelEntry",
    "ReportedResult",
    "TestProtocol",
]

# Normalisation constants of mmaction2's pipelines (the 0.x configs' `img_norm_cfg`). The only place they are written:
# tools/build_index.py imports them, and an index entry without explicit Mean/Std gets them from here.
#: ``Normalize`` for RGB frames: (x - mean) / std per channel, channel order RGB, 0..255 input.
RGB_MEAN: tuple[float, ...] = (123.675, 116.28, 103.53)
RGB_STD: tuple[float, ...] = (58.395, 57.12, 57.375)
#: ``Normalize`` for flow frames: (x - 128) / 128 per channel, channel 0 = x flow, channel 1 = y flow.
FLOW_MEAN: tuple[float, ...] = (128.0, 128.0)
FLOW_STD: tuple[float, ...] = (128.0, 128.0)

_CROPS = {"three": 3, "center": 1}

# Where an entry's checkpoint was published and in which layout (``Provenance`` / ``Checkpoint: Format``).
PROVENANCES: tuple[str, ...] = ("mmaction2-0.x", "mmaction2-1.x", "pytorchvideo", "pyslowfast")
CHECKPOINT_FORMATS: tuple[str, ...] = ("mmaction2-pth", "pytorchvideo-pyth", "pyslowfast-pyth", "caffe2-pkl")
#: How the classifier pools the feature map (see slowonly_zoo/models/head.py): 'global' (mmaction2's global
#: average), 'pytorchvideo' (fixed (T, 7, 7) window, stride 1, mean of per-position logits), 'pyslowfast' (same
#: window, eval mode: mean of per-position softmax/sigmoid, so the network outputs probabilities).
HEAD_MODES: tuple[str, ...] = ("global", "pytorchvideo", "pyslowfast")
#: Test-time clip sampling (slowonly_zoo/data/sampling.py): mmaction2 0.x ``SampleFrames``, mmaction2 1.x
#: ``SampleFrames`` (PySlowFast-style evenly spaced offsets, mmaction 1.2.0 mmaction/datasets/transforms/loading.py
#: ``_get_test_clips``), PySlowFast's decoder (frames spread over a window at ``target_fps``), or one frame from the
#: middle of each of ``clip_len`` segments.
PROTOCOL_SAMPLINGS: tuple[str, ...] = ("mmaction0x", "mmaction1x", "pyslowfast-decoder", "segment-middle")
#: The samplings of mmaction2's own test pipelines (what verify and predict run).
MMACTION2_SAMPLINGS: tuple[str, ...] = ("mmaction0x", "mmaction1x")
VIEW_ENSEMBLES: tuple[str, ...] = ("mean", "sum", "max")
SCORE_ACTIVATIONS: tuple[str, ...] = ("softmax", "sigmoid")
METRICS: tuple[str, ...] = ("accuracy", "mAP")


@dataclass(frozen=True)
class Architecture:
    """What the network looks like (everything ``SlowOnly(...)`` needs besides ``num_classes``)."""

    depth: int  #: 50 or 101
    non_local: bool  #: embedded-gaussian non-local blocks after layer2.{0,2} and layer3.{0,2,4}
    in_channels: int  #: 3 for RGB, 2 for flow
    modality: str  #: 'rgb' or 'flow'
    with_pool1: bool  #: stem max-pool (False only for Something-Something V1)
    clip_len: int  #: frames per clip (T at the input and at layer4)
    frame_interval: int  #: temporal stride between sampled frames
    head_mode: str = "global"  #: one of :data:`HEAD_MODES`


@dataclass(frozen=True)
class TestProtocol:
    """mmaction2's test pipeline for this checkpoint (the 0.x config's ``test_pipeline``): how to turn one
    video into views."""

    __test__ = False  # not a pytest test class, whatever its name

    num_clips: int  #: clips sampled uniformly over the video (``SampleFrames(test_mode=True)``)
    clip_len: int
    frame_interval: int
    resize_short: int | None  #: ``Resize(-1, resize_short)``; None = no resize (K600/K700)
    crop: str  #: 'three' (``ThreeCrop``: left, right, middle) or 'center' (``CenterCrop``)
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalize: str  #: 'rgb' ((x - mean) * (1/std), cv2 float32) or 'flow' ((x - 128) / 128)
    average_clips: str  #: 'prob': softmax per view, then mean over views
    data_format: str  #: 'rawframes' (RawframeDataset) or 'video' (VideoDataset)
    filename_tmpl: str | None  #: frame file name template for rawframes, None for videos
    start_index: int  #: 1 for rawframes, 0 for videos
    # FAIR's protocols (../shared/reference/fair_slow_checkpoints.md section 1c); the defaults are mmaction2 0.x's.
    sampling: str = "mmaction0x"  #: one of :data:`PROTOCOL_SAMPLINGS` ('mmaction1x' for the 1.x checkpoints)
    target_fps: float | None = None  #: 'pyslowfast-decoder': the frame rate the clip window is measured at (30)
    view_ensemble: str = "mean"  #: how per-view scores are combined: one of :data:`VIEW_ENSEMBLES`
    score_activation: str = "softmax"  #: per-view scores: softmax (single label) or sigmoid (multi-label)
    metric: str = "accuracy"  #: 'accuracy' (top-k) or 'mAP' (mean average precision, multi-label)

    def fair_pieces(self) -> list[str]:
        """The FAIR-specific pieces of this protocol, in words ([] for mmaction2's protocols)."""
        pieces = []
        if self.sampling not in MMACTION2_SAMPLINGS:
            pieces.append(f"{self.sampling} sampling" + (f" at {self.target_fps:g} fps" if self.target_fps else ""))
        if self.view_ensemble != "mean":
            pieces.append(f"{self.view_ensemble} over views")
        if self.score_activation != "softmax":
            pieces.append(f"{self.score_activation} scores")
        if self.metric != "accuracy":
            pieces.append(f"{self.metric} as the metric")
        return pieces

    @property
    def is_mmaction2(self) -> bool:
        """True for mmaction2's own test protocols, 0.x or 1.x (what verify and predict run): every FAIR-specific
        field has its mmaction2 default."""
        return self.sampling in MMACTION2_SAMPLINGS and (
            self.target_fps,
            self.view_ensemble,
            self.score_activation,
            self.metric,
        ) == (None, "mean", "softmax", "accuracy")

    @property
    def data_sampling(self) -> str:
        """The data layer's name for this protocol's clip offsets (slowonly_zoo/data/sampling.py ``SAMPLINGS``):
        'mmaction0x', or 'pyslowfast' for mmaction2 1.x's offsets; FAIR's samplings need a frame plan."""
        return "pyslowfast" if self.sampling == "mmaction1x" else "mmaction0x"

    @property
    def num_crops(self) -> int:
        """Spatial crops per clip: 3 for 'three', 1 for 'center'."""
        return _CROPS[self.crop]

    @property
    def num_views(self) -> int:
        """Views per video (crops x clips): 30 normally, 10 for the GYM99 flow model."""
        return self.num_crops * self.num_clips


@dataclass(frozen=True)
class ReportedResult:
    """One README row naming this checkpoint. Accuracies in percent; None where the row gives none."""

    dataset: str
    top1: float | None = None
    top5: float | None = None
    mean_class_accuracy: float | None = None
    mean_average_precision: float | None = None  #: mAP in percent (multi-label datasets: Charades)
    inference_time: float | None = None  #: videos/s from upstream's benchmark script (random weights)
    inference_frames: str | None = None  #: the README's note next to the inference time, e.g. '40x3 frames'
    gpu_mem: int | None = None  #: training GPU memory in MB
    resolution: str | None = None  #: the row's resolution column ('short-side 320', '340x256', ...)
    training_resources: str | None = None  #: the row's gpus column ('8x2', ...)
    section: str | None = None  #: README section title ('Kinetics-400 Data Benchmark', ...)
    row: int | None = None  #: 1-based row number inside that section's table
    source_config: str | None = None  #: config name shown in the row (None where the row shows 'x')
    task: str = "Action Recognition"

    @property
    def source(self) -> str:
        """Where the numbers come from, for humans: 'README § <section>, row <n> (<config>)'."""
        # FAIR's and mmaction2 1.x's entries: a file of the upstream repository ('... README.md § Kinetics-400')
        if self.section and (".md" in self.section or self.section.endswith(".yml")):
            where = f"{self.section}" + (f", line {self.row}" if self.row is not None else "")
            return f"{where} ({self.source_config})" if self.source_config else where
        where = f"README § {self.section or '?'}, row {self.row if self.row is not None else '?'}"
        return f"{where} ({self.source_config})" if self.source_config else where


@dataclass(frozen=True)
class Checkpoint:
    """The upstream checkpoint file. ``sha256_prefix`` is the first 8 hex digits of its SHA-256 (the
    ``-xxxxxxxx.pth`` suffix of every mmaction2 file name); None for FAIR's files, whose names carry no hash.
    ``sha256``, when known, is the file's full SHA-256 (64 lowercase hex digits); where set it wins over the
    prefix: a download or import must match it in full."""

    url: str
    filename: str
    sha256_prefix: str | None
    log_url: str | None = None
    json_url: str | None = None
    hf_hub_id: str | None = None
    previous_filenames: tuple[str, ...] = ()  #: names the same model was first published under (other bytes)
    format: str = "mmaction2-pth"  #: the file's layout: one of :data:`CHECKPOINT_FORMATS`
    alternate_urls: tuple[str, ...] = ()  #: other published URLs of the same bytes, tried after ``url``
    sha256: str | None = None  #: the full SHA-256 of the file, when known (wins over ``sha256_prefix``)


@dataclass(frozen=True)
class ModelEntry:
    """Everything known about one model. Ensemble entries (``members`` non-empty) have no architecture,
    protocol or checkpoint of their own: they combine the scores of their members."""

    name: str
    aliases: tuple[str, ...]
    config: str | None  #: upstream config path, e.g. 'configs/recognition/slowonly/x.py'
    collection: str
    dataset: str  #: evaluation dataset, e.g. 'Kinetics-400'
    num_classes: int  #: head size (400 for GYM99, whose labels are only 0..98)
    label_file: str | None  #: 'labels/<x>.txt' inside the package, or an absolute path
    pretrain: str | None  #: 'ImageNet', 'Kinetics-400' or None (from scratch)
    train_resolution: str | None  #: frames trained on: 'short-side 320', '340x256', ...
    architecture: Architecture | None  #: None only for ensembles
    protocol: TestProtocol | None  #: None only for ensembles
    results: tuple[ReportedResult, ...]  #: primary README row first, then rows reusing this checkpoint
    checkpoint: Checkpoint | None
    params: int | None  #: parameter count of the full recognizer
    members: tuple[str, ...] = ()  #: canonical names fused by an ensemble entry
    member_weights: tuple[float, ...] = ()  #: score weights of the members (1:1 -> (1.0, 1.0))
    training_data: str | None = None  #: e.g. 'Kinetics-400 + OmniSource'
    epochs: int | None = None
    train_recipe: TrainRecipe | None = None  #: how upstream trained it; None for ensembles
    provenance: str = "mmaction2-0.x"  #: who published the checkpoint: one of :data:`PROVENANCES`
    unsupported: str | None = None  #: why this zoo cannot build the model (None: it can); recorded, not built

    # -- convenience ------------------------------------------------------------------------------

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint is not None

    @property
    def supported(self) -> bool:
        """False for entries recorded only to say why the zoo cannot build them (``unsupported`` gives the reason)."""
        return self.unsupported is None

    @property
    def primary_result(self) -> ReportedResult | None:
        """The README row this entry was made from (the first one naming the checkpoint)."""
        return self.results[0] if self.results else None

    @property
    def label_path(self) -> Path | None:
        """Filesystem path of the label file (None when the entry has none)."""
        if self.label_file is None:
            return None
        p = Path(self.label_file)
        if p.is_absolute():
            return p
        return Path(str(resources.files("slowonly_zoo").joinpath(self.label_file)))

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in label order, read lazily from the label file; () when the entry has none.

        The file may hold fewer names than the head has outputs (GYM99: 99 names, 400-way head), never more.
        """
        path = self.label_path
        if path is None:
            return ()
        names = _read_label_file(str(path))
        if len(names) > self.num_classes:
            raise ModelIndexError(
                f"{self.name}: label file {path} has {len(names)} names but the head has only "
                f"{self.num_classes} outputs; fix 'Label File' or 'Num Classes' in the index."
            )
        return names

    # -- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the dataclass field names (tuples become lists), plus derived values."""
        d = _jsonable(dataclasses.asdict(self))
        if self.protocol is not None:
            d["protocol"]["num_views"] = self.protocol.num_views
        if self.train_recipe is not None:
            d["train_recipe"]["reference_batch"] = self.train_recipe.reference_batch
        d["is_ensemble"] = self.is_ensemble
        return d


@functools.lru_cache(maxsize=64)
def _read_label_file(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelIndexError(f"cannot read label file {path}: {exc}") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    names = tuple(line.rstrip("\r") for line in lines)
    blank = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise ModelIndexError(f"label file {path} has blank lines at {blank[:5]}; one class name per line")
    return names


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
