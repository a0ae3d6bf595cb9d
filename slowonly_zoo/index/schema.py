"""The ``model_index.yml`` schema (Title Case keys, the OpenMMLab / Papers-with-Code model-index layout where it
fits): reading entries from YAML with errors that name the file, entry and key, validating them, and writing them
back (:func:`entry_to_index`, used by ``tools/build_index.py``). The one reader of index files: the packaged index,
``SLOWONLY_ZOO_EXTRA_INDEX`` files and :func:`~slowonly_zoo.index.register_model_entry` dicts all go through
:func:`entry_from_index`."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelIndexError
from .recipes import INIT_IMAGENET, INIT_SCRATCH, CropRanges, LrPolicy, TrainRecipe, TrainSampling, ValPipeline
from .records import (
    _CROPS,
    CHECKPOINT_FORMATS,
    FLOW_MEAN,
    FLOW_STD,
    HEAD_MODES,
    METRICS,
    PROTOCOL_SAMPLINGS,
    PROVENANCES,
    RGB_MEAN,
    RGB_STD,
    SCORE_ACTIVATIONS,
    VIEW_ENSEMBLES,
    Architecture,
    Checkpoint,
    ModelEntry,
    ReportedResult,
    TestProtocol,
)

__all__ = [
    "entry_from_index",
    "entry_to_index",
    "is_plain_filename",
    "load_index_file",
    "parse_index_text",
    "recipe_from_index",
    "recipe_to_index",
    "validate_entry",
    "validate_recipe",
]

_DEFAULT_NORM: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "rgb": (RGB_MEAN, RGB_STD),
    "flow": (FLOW_MEAN, FLOW_STD),
}
_IN_CHANNELS = {"rgb": 3, "flow": 2}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HEX8_RE = re.compile(r"^[0-9a-f]{8}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~8x faster where PyYAML has it


_ARCH_KEYS = (
    ("Depth", "depth"),
    ("Non Local", "non_local"),
    ("In Channels", "in_channels"),
    ("Modality", "modality"),
    ("With Pool1", "with_pool1"),
    ("Clip Len", "clip_len"),
    ("Frame Interval", "frame_interval"),
)
_PROTOCOL_KEYS = (
    ("Data Format", "data_format"),
    ("Filename Template", "filename_tmpl"),
    ("Start Index", "start_index"),
    ("Num Clips", "num_clips"),
    ("Clip Len", "clip_len"),
    ("Frame Interval", "frame_interval"),
    ("Resize Short", "resize_short"),
    ("Crop", "crop"),
    ("Crop Size", "crop_size"),
    ("Normalize", "normalize"),
    ("Mean", "mean"),
    ("Std", "std"),
    ("Average Clips", "average_clips"),
)
# Optional protocol keys (FAIR's protocols), written only when they differ from the mmaction2 default, so the
# mmaction2 entries read as before: (key, field, allowed values or None for a number).
_PROTOCOL_OPTIONAL_KEYS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("Sampling", "sampling", PROTOCOL_SAMPLINGS),
    ("Target FPS", "target_fps", None),
    ("View Ensemble", "view_ensemble", VIEW_ENSEMBLES),
    ("Score Activation", "score_activation", SCORE_ACTIVATIONS),
    ("Metric", "metric", METRICS),
)
_PROTOCOL_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(TestProtocol) if f.default is not dataclasses.MISSING
}
_METRIC_KEYS = (
    ("Top 1 Accuracy", "top1"),
    ("Top 5 Accuracy", "top5"),
    ("Mean Class Accuracy", "mean_class_accuracy"),
    ("mAP", "mean_average_precision"),
)
_RESULT_EXTRA_KEYS = (
    ("Inference Time (video/s)", "inference_time"),
    ("Inference Frames", "inference_frames"),
    ("GPU Memory (MB)", "gpu_mem"),
    ("Resolution", "resolution"),
    ("Training Resources", "training_resources"),
)
_SOURCE_KEYS = (("Section", "section"), ("Row", "row"), ("Config", "source_config"))
_CHECKPOINT_KEYS = (
    ("URL", "url"),
    ("Filename", "filename"),
    ("SHA256 Prefix", "sha256_prefix"),
    ("Log", "log_url"),
    ("JSON", "json_url"),
    ("HF Hub ID", "hf_hub_id"),
    ("Previous Filenames", "previous_filenames"),
    ("Format", "format"),
    ("Alternate URLs", "alternate_urls"),
    ("SHA256", "sha256"),
)


def entry_to_index(e: ModelEntry) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if e.architecture is not None:
        a = e.architecture
        meta["Architecture"] = f"ResNet{a.depth}" + (" + non-local" if a.non_local else "")
    meta["Training Data"] = e.training_data
    meta["Pretrained"] = e.pretrain
    meta["Resolution"] = e.train_resolution
    meta["Epochs"] = e.epochs
    meta["Parameters"] = e.params

    out: dict[str, Any] = {
        "Name": e.name,
        "In Collection": e.collection,
        "Provenance": e.provenance,
        "Alias": list(e.aliases),
        "Config": e.config,
        "Metadata": meta,
        "Results": [_result_to_index(r) for r in e.results],
        "Weights": e.checkpoint.url if e.checkpoint else None,
        "Dataset": e.dataset,
        "Num Classes": e.num_classes,
        "Label File": e.label_file,
    }
    if e.unsupported is not None:
        out["Not Supported"] = e.unsupported
    if e.architecture is not None:
        out["Architecture"] = {k: getattr(e.architecture, f) for k, f in _ARCH_KEYS}
        if e.architecture.head_mode != "global":
            out["Architecture"]["Head Mode"] = e.architecture.head_mode
    if e.protocol is not None:
        out["Test Protocol"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, f in _PROTOCOL_KEYS for v in [getattr(e.protocol, f)]
        }
        for k, f, _ in _PROTOCOL_OPTIONAL_KEYS:
            if getattr(e.protocol, f) != _PROTOCOL_DEFAULTS[f]:
                out["Test Protocol"][k] = getattr(e.protocol, f)
    if e.checkpoint is not None:
        out["Checkpoint"] = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, f in _CHECKPOINT_KEYS
            for v in [getattr(e.checkpoint, f)]
            if f not in ("alternate_urls", "sha256") or v  # written only where an entry has some
        }
    if e.members:
        out["Members"] = list(e.members)
        out["Member Weights"] = list(e.member_weights)
    if e.train_recipe is not None:
        out["Train Recipe"] = recipe_to_index(e.train_recipe)
    return out


def _result_to_index(r: ReportedResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Task": r.task,
        "Dataset": r.dataset,
        "Metrics": {k: getattr(r, f) for k, f in _METRIC_KEYS if getattr(r, f) is not None},
    }
    for k, f in _RESULT_EXTRA_KEYS:
        if getattr(r, f) is not None:
            out[k] = getattr(r, f)
    out["Source"] = {k: getattr(r, f) for k, f in _SOURCE_KEYS}
    return out


class _Fields:
    """Typed access to one mapping of an index file, with errors that say where the problem is."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ModelIndexError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.where = where

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ModelIndexError(f"{self.where}: missing required key {key!r}")
            return None
        return self.data[key]

    def text(self, key: str, required: bool = True) -> str | None:
        v = self._get(key, required)
        if v is not None and not isinstance(v, str):
            raise ModelIndexError(f"{self.where}: {key!r} must be a string, got {v!r}")
        return v

    def integer(self, key: str, required: bool = True) -> int | None:
        v = self._get(key, required)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ModelIndexError(f"{self.where}: {key!r} must be an integer, got {v!r}")
        return v

    def number(self, key: str, required: bool = True) -> float | None:
        v = self._get(key, required)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ModelIndexError(f"{self.where}: {key!r} must be a number, got {v!r}")
        return None if v is None else float(v)

    def flag(self, key: str, required: bool = True) -> bool | None:
        v = self._get(key, required)
        if v is not None and not isinstance(v, bool):
            raise ModelIndexError(f"{self.where}: {key!r} must be true or false, got {v!r}")
        return v

    def seq(self, key: str, required: bool = False) -> list[Any]:
        v = self._get(key, required)
        if v is None:
            return []
        if not isinstance(v, list):
            raise ModelIndexError(f"{self.where}: {key!r} must be a list, got {v!r}")
        return v

    def sub(self, key: str, required: bool = True) -> _Fields | None:
        v = self._get(key, required)
        return None if v is None else _Fields(v, f"{self.where}: {key}")

    def choice(self, key: str, choices: Iterable[str]) -> str:
        v = self.text(key)
        assert v is not None
        allowed = tuple(choices)
        if v not in allowed:
            raise ModelIndexError(f"{self.where}: {key!r} must be one of {allowed}, got {v!r}")
        return v


def entry_from_index(data: Mapping[str, Any], origin: str = "<dict>") -> ModelEntry:
    top = _Fields(data, origin)
    name = top.text("Name")
    assert name is not None
    f = _Fields(data, f"{origin}: model {name!r}")
    meta = f.sub("Metadata", required=False) or _Fields({}, f"{f.where}: Metadata")

    members = tuple(str(m) for m in f.seq("Members"))
    weights = tuple(float(w) for w in f.seq("Member Weights"))
    if members and not weights:
        weights = (1.0,) * len(members)
    if len(weights) != len(members):
        raise ModelIndexError(f"{f.where}: 'Member Weights' must have one weight per member")

    arch_f = f.sub("Architecture", required=not members and "Not Supported" not in data)
    architecture = None
    if arch_f is not None:
        arch_kw: dict[str, Any] = {}
        for key, attr in _ARCH_KEYS:
            if attr == "modality":
                arch_kw[attr] = arch_f.choice(key, _IN_CHANNELS)
            elif attr in ("non_local", "with_pool1"):
                arch_kw[attr] = arch_f.flag(key)
            else:
                arch_kw[attr] = arch_f.integer(key)
        if "Head Mode" in arch_f.data:
            arch_kw["head_mode"] = arch_f.choice("Head Mode", HEAD_MODES)
        architecture = Architecture(**arch_kw)

    unsupported = f.text("Not Supported", required=False)
    prot_f = f.sub("Test Protocol", required=not members and unsupported is None)
    protocol = None
    if prot_f is not None:
        norm = prot_f.choice("Normalize", _DEFAULT_NORM)
        prot_kw: dict[str, Any] = {}
        for key, attr in _PROTOCOL_KEYS:
            if attr in ("mean", "std"):
                prot_kw[attr] = _floats(prot_f, key, _DEFAULT_NORM[norm][0 if attr == "mean" else 1])
            elif attr == "normalize":
                prot_kw[attr] = norm
            elif attr == "crop":
                prot_kw[attr] = prot_f.choice(key, _CROPS)
            elif attr == "data_format":
                prot_kw[attr] = prot_f.choice(key, ("rawframes", "video"))
            elif attr == "average_clips":
                prot_kw[attr] = prot_f.choice(key, ("prob", "score"))
            elif attr == "filename_tmpl":
                prot_kw[attr] = prot_f.text(key, required=False)
            elif attr == "resize_short":
                prot_kw[attr] = prot_f.integer(key, required=False)
            else:
                prot_kw[attr] = prot_f.integer(key)
        for key, attr, allowed in _PROTOCOL_OPTIONAL_KEYS:
            if prot_f.data.get(key) is None:
                continue
            prot_kw[attr] = prot_f.choice(key, allowed) if allowed else prot_f.number(key)
        protocol = TestProtocol(**prot_kw)

    recipe_f = f.sub("Train Recipe", required=False)
    train_recipe = None if recipe_f is None else recipe_from_index(recipe_f, protocol)

    ck_f = f.sub("Checkpoint", required=False)
    checkpoint = None
    if ck_f is not None:
        checkpoint = Checkpoint(
            url=ck_f.text("URL"),  # type: ignore[arg-type]
            filename=ck_f.text("Filename"),  # type: ignore[arg-type]
            sha256_prefix=ck_f.text("SHA256 Prefix", required=False),
            log_url=ck_f.text("Log", required=False),
            json_url=ck_f.text("JSON", required=False),
            hf_hub_id=ck_f.text("HF Hub ID", required=False),
            previous_filenames=tuple(str(x) for x in ck_f.seq("Previous Filenames")),
            format=ck_f.choice("Format", CHECKPOINT_FORMATS) if "Format" in ck_f.data else "mmaction2-pth",
            alternate_urls=tuple(str(x) for x in ck_f.seq("Alternate URLs")),
            sha256=ck_f.text("SHA256", required=False),
        )

    results = []
    for i, item in enumerate(f.seq("Results")):
        rf = _Fields(item, f"{f.where}: Results[{i}]")
        metrics = rf.sub("Metrics", required=False) or _Fields({}, f"{rf.where}: Metrics")
        source = rf.sub("Source", required=False) or _Fields({}, f"{rf.where}: Source")
        results.append(
            ReportedResult(
                task=rf.text("Task", required=False) or "Action Recognition",
                dataset=rf.text("Dataset"),  # type: ignore[arg-type]
                top1=metrics.number("Top 1 Accuracy", required=False),
                top5=metrics.number("Top 5 Accuracy", required=False),
                mean_class_accuracy=metrics.number("Mean Class Accuracy", required=False),
                mean_average_precision=metrics.number("mAP", required=False),
                inference_time=rf.number("Inference Time (video/s)", required=False),
                inference_frames=rf.text("Inference Frames", required=False),
                gpu_mem=rf.integer("GPU Memory (MB)", required=False),
                resolution=rf.text("Resolution", required=False),
                training_resources=rf.text("Training Resources", required=False),
                section=source.text("Section", required=False),
                row=source.integer("Row", required=False),
                source_config=source.text("Config", required=False),
            )
        )

    entry = ModelEntry(
        name=name,
        aliases=tuple(str(a) for a in f.seq("Alias")),
        config=f.text("Config", required=False),
        collection=f.text("In Collection", required=False) or "SlowOnly",
        dataset=f.text("Dataset"),  # type: ignore[arg-type]
        num_classes=f.integer("Num Classes"),  # type: ignore[arg-type]
        label_file=f.text("Label File", required=False),
        pretrain=meta.text("Pretrained", required=False),
        train_resolution=meta.text("Resolution", required=False),
        architecture=architecture,
        protocol=protocol,
        results=tuple(results),
        checkpoint=checkpoint,
        params=meta.integer("Parameters", required=False),
        members=members,
        member_weights=weights,
        training_data=meta.text("Training Data", required=False),
        epochs=meta.integer("Epochs", required=False),
        train_recipe=train_recipe,
        provenance=f.choice("Provenance", PROVENANCES) if "Provenance" in data else "mmaction2-0.x",
        unsupported=unsupported,
    )
    validate_entry(entry, f.where)
    return entry


def validate_entry(e: ModelEntry, where: str) -> None:
    """Checks that hold for every entry, whatever file it came from."""
    for n in (e.name, *e.aliases):
        if not isinstance(n, str) or not _NAME_RE.match(n) or n.lower().endswith((".py", ".pth")):
            raise ModelIndexError(
                f"{where}: invalid name or alias {n!r}: use letters, digits, '_', '-', '.', "
                "without a directory or a .py/.pth suffix"
            )
    if not isinstance(e.num_classes, int) or e.num_classes < 1:
        raise ModelIndexError(f"{where}: 'Num Classes' must be a positive integer")
    if e.members:
        if e.checkpoint is not None:
            raise ModelIndexError(f"{where}: an ensemble entry (with 'Members') cannot have a checkpoint")
        if len(e.member_weights) != len(e.members):
            raise ModelIndexError(f"{where}: one member weight per member is needed")
    elif e.unsupported is not None:
        if not e.unsupported.strip():
            raise ModelIndexError(f"{where}: 'Not Supported' must say why the zoo cannot build the model")
    elif e.architecture is None or e.protocol is None:
        raise ModelIndexError(f"{where}: 'Architecture' and 'Test Protocol' are required (no 'Members')")
    if e.provenance not in PROVENANCES:
        raise ModelIndexError(f"{where}: 'Provenance' must be one of {PROVENANCES}, got {e.provenance!r}")
    if e.architecture is not None and e.architecture.head_mode not in HEAD_MODES:
        raise ModelIndexError(f"{where}: Architecture 'Head Mode' must be one of {HEAD_MODES}")
    a = e.architecture
    if a is not None:
        if a.depth not in (50, 101):
            raise ModelIndexError(f"{where}: Architecture 'Depth' must be 50 or 101, got {a.depth}")
        if a.in_channels != _IN_CHANNELS[a.modality]:
            raise ModelIndexError(
                f"{where}: Architecture 'In Channels' {a.in_channels} does not match modality "
                f"{a.modality!r} (expected {_IN_CHANNELS[a.modality]})"
            )
    p = e.protocol
    if p is not None:
        if p.crop not in _CROPS:
            raise ModelIndexError(f"{where}: Test Protocol 'Crop' must be one of {tuple(_CROPS)}")
        expected = a.in_channels if a is not None else len(p.mean)
        if len(p.mean) != expected or len(p.std) != expected:
            raise ModelIndexError(f"{where}: Test Protocol 'Mean'/'Std' need {expected} values each")
        if a is not None and p.normalize != a.modality:
            raise ModelIndexError(
                f"{where}: Test Protocol 'Normalize' {p.normalize!r} does not match modality {a.modality!r}"
            )
    if p is not None:
        for key, attr, allowed in _PROTOCOL_OPTIONAL_KEYS:
            value = getattr(p, attr)
            if allowed is not None and value not in allowed:
                raise ModelIndexError(f"{where}: Test Protocol {key!r} must be one of {allowed}, got {value!r}")
        if (p.sampling == "pyslowfast-decoder") != (p.target_fps is not None):
            raise ModelIndexError(
                f"{where}: Test Protocol 'Target FPS' is needed with, and only with, Sampling 'pyslowfast-decoder'"
            )
        if p.target_fps is not None and p.target_fps <= 0:
            raise ModelIndexError(f"{where}: Test Protocol 'Target FPS' must be positive, got {p.target_fps!r}")
    _check_ranges(e, where)
    c = e.checkpoint
    if c is not None:
        if c.format not in CHECKPOINT_FORMATS:
            raise ModelIndexError(f"{where}: Checkpoint 'Format' must be one of {CHECKPOINT_FORMATS}, got {c.format!r}")
        # mmaction2's file names end in the first 8 hex digits of their sha256; FAIR's carry no hash, so their
        # entries hold no prefix (and the weights code refuses to fetch them until a full hash is pinned).
        if c.sha256_prefix is None and c.format == "mmaction2-pth":
            raise ModelIndexError(f"{where}: an mmaction2 checkpoint needs its 'SHA256 Prefix' (from its file name)")
        if c.sha256_prefix is not None and not _HEX8_RE.match(c.sha256_prefix):
            raise ModelIndexError(f"{where}: 'SHA256 Prefix' must be 8 lowercase hex digits, got {c.sha256_prefix!r}")
        if c.sha256 is not None and not _HEX64_RE.match(c.sha256):
            raise ModelIndexError(f"{where}: Checkpoint 'SHA256' must be 64 lowercase hex digits, got {c.sha256!r}")
        if c.sha256 is not None and c.sha256_prefix is not None and not c.sha256.startswith(c.sha256_prefix):
            raise ModelIndexError(
                f"{where}: Checkpoint 'SHA256' {c.sha256} does not start with its 'SHA256 Prefix' "
                f"{c.sha256_prefix}; fix one of them"
            )
        for key, value in (("Filename", c.filename), *(("Previous Filenames", f) for f in c.previous_filenames)):
            if not is_plain_filename(value):
                raise ModelIndexError(
                    f"{where}: Checkpoint {key!r} must be a plain file name (no folder, no '..', not absolute, "
                    f"not hidden), got {value!r}"
                )
        for url in (c.url, *c.alternate_urls):
            if not url.endswith("/" + c.filename):
                raise ModelIndexError(f"{where}: checkpoint URL {url!r} does not end with its Filename {c.filename!r}")
    if e.train_recipe is not None:
        validate_recipe(e, f"{where}: Train Recipe")


def is_plain_filename(name: str) -> bool:
    """Whether ``name`` is a plain file name: it becomes a path in the weights cache, so a folder part, ``..``, an
    absolute path, a leading dot (hidden, and the cache's temporary files) or a control character is refused."""
    return (
        isinstance(name, str)
        and bool(name)
        and name not in (".", "..")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and all(ch.isprintable() for ch in name)
    )


def _check_ranges(e: ModelEntry, where: str) -> None:
    """The numeric fields of an entry's architecture and test protocol are in range, so a bad value fails at load,
    naming the entry and the field, not later in sampling or cropping."""

    def need(ok: bool, section: str, key: str, what: str, value: Any) -> None:
        if not ok:
            raise ModelIndexError(f"{where}: {section} {key!r} {what}, got {value!r}")

    a = e.architecture
    if a is not None:
        need(a.clip_len >= 1, "Architecture", "Clip Len", "must be 1 or more", a.clip_len)
        need(a.frame_interval >= 1, "Architecture", "Frame Interval", "must be 1 or more", a.frame_interval)
    p = e.protocol
    if p is None:
        return
    need(p.num_clips >= 1, "Test Protocol", "Num Clips", "must be 1 or more", p.num_clips)
    need(p.clip_len >= 1, "Test Protocol", "Clip Len", "must be 1 or more", p.clip_len)
    need(p.frame_interval >= 1, "Test Protocol", "Frame Interval", "must be 1 or more", p.frame_interval)
    need(p.crop_size >= 1, "Test Protocol", "Crop Size", "must be 1 or more pixels", p.crop_size)
    resize = p.resize_short
    need(resize is None or resize >= 1, "Test Protocol", "Resize Short", "must be 1 or more pixels (or absent)", resize)
    need(p.start_index >= 0, "Test Protocol", "Start Index", "must be 0 or more", p.start_index)
    need(all(math.isfinite(m) for m in p.mean), "Test Protocol", "Mean", "must be finite numbers", list(p.mean))
    need(all(math.isfinite(s) and s > 0 for s in p.std), "Test Protocol", "Std", "must be positive", list(p.std))


def load_index_file(path: str | os.PathLike[str]) -> tuple[ModelEntry, ...]:
    """Read every entry of an index YAML file (``Models:`` list; ``Collections:`` is optional).

    A relative ``Label File`` that exists next to the YAML file is made absolute.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelIndexError(f"cannot read model index file {p}: {exc}") from exc
    entries = parse_index_text(text, str(p))
    return tuple(_absolutise_labels(e, p.parent) for e in entries)


def _absolutise_labels(e: ModelEntry, base: Path) -> ModelEntry:
    if e.label_file and not Path(e.label_file).is_absolute() and (base / e.label_file).is_file():
        return dataclasses.replace(e, label_file=str((base / e.label_file).resolve()))
    return e


def parse_index_text(text: str, origin: str) -> list[ModelEntry]:
    try:
        doc = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ModelIndexError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("Models"), list):
        raise ModelIndexError(f"{origin}: expected a top-level 'Models:' list (see the packaged model_index.yml)")
    return [entry_from_index(item, origin) for item in doc["Models"]]


# --------------------------------------------------------------------------------------------------
# train recipes ("Train Recipe:", slowonly_zoo.index.recipes.TrainRecipe)
# --------------------------------------------------------------------------------------------------

_LR_POLICIES = ("cosine", "step")
_RECIPE_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(TrainRecipe) if f.default is not dataclasses.MISSING
}
_WARMUPS = ("linear",)


def recipe_to_index(r: TrainRecipe) -> dict[str, Any]:
    """One recipe in the ``model_index.yml`` schema (the inverse of :func:`recipe_from_index`); floats are
    written as floats, so a round trip gives the same text."""
    s = r.schedule
    return {
        "Config": r.config,
        "Runnable": r.runnable,
        "Note": r.note,
        "GPUs": r.gpus,
        "LR GPUs": r.lr_gpus,
        "Videos Per GPU": r.videos_per_gpu,
        "LR": float(r.lr),
        "Momentum": float(r.momentum),
        "Weight Decay": float(r.weight_decay),
        "Clip Max Norm": None if r.clip_max_norm is None else float(r.clip_max_norm),
        "LR Schedule": {
            "Policy": s.policy,
            "By Epoch": s.by_epoch,
            "Steps": list(s.steps),
            "Gamma": float(s.gamma),
            "Min LR": float(s.min_lr),
            "Warmup": s.warmup,
            "Warmup Epochs": float(s.warmup_epochs),
            "Warmup Ratio": float(s.warmup_ratio),
        },
        "Epochs": r.epochs,
        "Init": r.init,
        "Dropout": float(r.dropout),
        "Sampling": {
            "Clip Len": r.sampling.clip_len,
            "Frame Interval": r.sampling.frame_interval,
            "Num Clips": r.sampling.num_clips,
        },
        "Resize Short": r.resize_short,
        "Crop": {"Area": [float(x) for x in r.crop.area], "Aspect": [float(x) for x in r.crop.aspect]},
        "Out Size": r.out_size,
        "Flip Ratio": float(r.flip_ratio),
        "Flip Label Map": [[a, b] for a, b in r.flip_label_map] or None,
        "Mean": [float(x) for x in r.mean],
        "Std": [float(x) for x in r.std],
        "Val": {"Num Clips": r.val.num_clips, "Resize Short": r.val.resize_short, "Crop Size": r.val.crop_size},
        "Val Interval": r.val_interval,
        "Save Interval": r.save_interval,
        "Log Interval": r.log_interval,
    }


def _pair(f: _Fields, key: str, default: tuple[float, float]) -> tuple[float, float]:
    raw = f.seq(key)
    if not raw:
        return default
    if len(raw) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in raw):
        raise ModelIndexError(f"{f.where}: {key!r} must be a list of two numbers [low, high], got {raw!r}")
    return (float(raw[0]), float(raw[1]))


def _floats(f: _Fields, key: str, default: tuple[float, ...] | None) -> tuple[float, ...]:
    raw = f.seq(key, required=default is None)
    if not raw:
        assert default is not None
        return default
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in raw):
        raise ModelIndexError(f"{f.where}: {key!r} must be a list of numbers, got {raw!r}")
    return tuple(float(x) for x in raw)


def recipe_from_index(f: _Fields, protocol: TestProtocol | None) -> TrainRecipe:
    """Read a ``Train Recipe:`` mapping; keys with upstream defaults (momentum 0.9, weight decay 1e-4, clip 40,
    dropout 0.5, RandomResizedCrop's ranges, flip 0.5, val every 5 epochs, ...) may be left out. Mean/Std default
    to the test protocol's."""
    defaults = _RECIPE_DEFAULTS
    sched_f = f.sub("LR Schedule")
    samp_f = f.sub("Sampling")
    val_f = f.sub("Val")
    crop_f = f.sub("Crop", required=False) or _Fields({}, f"{f.where}: Crop")
    assert sched_f is not None and samp_f is not None and val_f is not None

    warmup = sched_f.text("Warmup", required=False)
    if warmup is not None and warmup not in _WARMUPS:
        raise ModelIndexError(f"{sched_f.where}: 'Warmup' must be one of {_WARMUPS} or null, got {warmup!r}")
    steps = sched_f.seq("Steps")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in steps):
        raise ModelIndexError(f"{sched_f.where}: 'Steps' must be a list of epochs (integers), got {steps!r}")
    schedule = LrPolicy(
        policy=sched_f.choice("Policy", _LR_POLICIES),  # type: ignore[arg-type]
        by_epoch=_default(sched_f.flag("By Epoch", required=False), True),
        steps=tuple(steps),
        gamma=_default(sched_f.number("Gamma", required=False), 0.1),
        min_lr=_default(sched_f.number("Min LR", required=False), 0.0),
        warmup=warmup,  # type: ignore[arg-type]
        warmup_epochs=_default(sched_f.number("Warmup Epochs", required=False), 0.0),
        warmup_ratio=_default(sched_f.number("Warmup Ratio", required=False), 0.1),
    )
    flip_pairs = _label_pairs(f, "Flip Label Map")
    norm_default = (protocol.mean, protocol.std) if protocol is not None else (None, None)
    clip_given = "Clip Max Norm" in f.data
    return TrainRecipe(
        config=f.text("Config"),  # type: ignore[arg-type]
        gpus=f.text("GPUs", required=False),
        videos_per_gpu=f.integer("Videos Per GPU"),  # type: ignore[arg-type]
        lr=f.number("LR"),  # type: ignore[arg-type]
        schedule=schedule,
        epochs=f.integer("Epochs"),  # type: ignore[arg-type]
        init=f.text("Init"),  # type: ignore[arg-type]
        sampling=TrainSampling(
            clip_len=samp_f.integer("Clip Len"),  # type: ignore[arg-type]
            frame_interval=samp_f.integer("Frame Interval"),  # type: ignore[arg-type]
            num_clips=_default(samp_f.integer("Num Clips", required=False), 1),
        ),
        resize_short=f.integer("Resize Short", required=False),
        out_size=f.integer("Out Size"),  # type: ignore[arg-type]
        mean=_floats(f, "Mean", norm_default[0]),
        std=_floats(f, "Std", norm_default[1]),
        val=ValPipeline(
            resize_short=val_f.integer("Resize Short", required=False),
            crop_size=val_f.integer("Crop Size"),  # type: ignore[arg-type]
            num_clips=_default(val_f.integer("Num Clips", required=False), 1),
        ),
        lr_gpus=_default(f.integer("LR GPUs", required=False), defaults["lr_gpus"]),
        momentum=_default(f.number("Momentum", required=False), defaults["momentum"]),
        weight_decay=_default(f.number("Weight Decay", required=False), defaults["weight_decay"]),
        # an explicit null means "no clipping"; a missing key means upstream's 40
        clip_max_norm=f.number("Clip Max Norm", required=False) if clip_given else defaults["clip_max_norm"],
        dropout=_default(f.number("Dropout", required=False), defaults["dropout"]),
        crop=CropRanges(
            area=_pair(crop_f, "Area", CropRanges().area), aspect=_pair(crop_f, "Aspect", CropRanges().aspect)
        ),
        flip_ratio=_default(f.number("Flip Ratio", required=False), defaults["flip_ratio"]),
        flip_label_map=flip_pairs,
        val_interval=_default(f.integer("Val Interval", required=False), defaults["val_interval"]),
        save_interval=_default(f.integer("Save Interval", required=False), defaults["save_interval"]),
        log_interval=_default(f.integer("Log Interval", required=False), defaults["log_interval"]),
        runnable=_default(f.flag("Runnable", required=False), True),
        note=f.text("Note", required=False),
    )


def _label_pairs(f: _Fields, key: str) -> tuple[tuple[int, int], ...]:
    """[[label, label when flipped], ...] (as written), or a mapping label -> label (keys may be digit strings,
    as JSON writes them)."""
    raw = f._get(key, False) or []
    items = list(raw.items()) if isinstance(raw, Mapping) else raw
    bad = ModelIndexError(f"{f.where}: {key!r} must be a list of [label, label when flipped] pairs, got {raw!r}")
    if not isinstance(items, list):
        raise bad
    pairs: list[tuple[int, int]] = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise bad
        a, b = (int(x) if isinstance(x, str) and x.isdigit() else x for x in item)
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int) or not isinstance(b, int):
            raise bad
        pairs.append((a, b))
    return tuple(sorted(pairs))


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def validate_recipe(e: ModelEntry, where: str) -> None:
    """Checks on ``e.train_recipe`` that hold for every entry; errors name the entry and the key."""
    r = e.train_recipe
    assert r is not None
    s = r.schedule

    def need(ok: bool, key: str, what: str, value: Any) -> None:
        if not ok:
            raise ModelIndexError(f"{where}: {key!r} {what}, got {value!r}")

    if e.members:
        raise ModelIndexError(f"{where}: an ensemble entry (with 'Members') has no train recipe of its own")
    need(bool(r.config), "Config", "must name the upstream config", r.config)
    need(r.videos_per_gpu >= 1, "Videos Per GPU", "must be 1 or more", r.videos_per_gpu)
    need(r.lr_gpus >= 1, "LR GPUs", "must be 1 or more", r.lr_gpus)
    need(r.lr > 0, "LR", "must be positive", r.lr)
    need(0 <= r.momentum < 1, "Momentum", "must be in [0, 1)", r.momentum)
    need(r.weight_decay >= 0, "Weight Decay", "must be 0 or more", r.weight_decay)
    need(r.clip_max_norm is None or r.clip_max_norm > 0, "Clip Max Norm", "must be positive or null", r.clip_max_norm)
    need(r.epochs >= 1, "Epochs", "must be 1 or more", r.epochs)
    need(0 <= r.dropout < 1, "Dropout", "must be in [0, 1)", r.dropout)
    need(s.policy != "step" or bool(s.steps), "LR Schedule: Steps", "needs at least one milestone for 'step'", s.steps)
    need(list(s.steps) == sorted(set(s.steps)), "LR Schedule: Steps", "must be increasing", s.steps)
    need(
        all(0 < m < r.epochs for m in s.steps), "LR Schedule: Steps", f"must lie inside the {r.epochs} epochs", s.steps
    )
    need(s.by_epoch or s.policy == "cosine", "LR Schedule: By Epoch", "can be false only for 'cosine'", s.by_epoch)
    need(0 < s.gamma <= 1, "LR Schedule: Gamma", "must be in (0, 1]", s.gamma)
    need(0 <= s.min_lr < r.lr, "LR Schedule: Min LR", "must be in [0, LR)", s.min_lr)
    if s.warmup is not None:
        need(0 < s.warmup_epochs < r.epochs, "LR Schedule: Warmup Epochs", "must be inside the run", s.warmup_epochs)
        need(0 < s.warmup_ratio <= 1, "LR Schedule: Warmup Ratio", "must be in (0, 1]", s.warmup_ratio)
    need(
        r.init in (INIT_SCRATCH, INIT_IMAGENET) or bool(_NAME_RE.match(r.init)),
        "Init",
        f"must be {INIT_SCRATCH!r}, {INIT_IMAGENET!r} or a model name",
        r.init,
    )
    a = e.architecture
    if a is not None:
        for key, got, want in (
            ("Sampling: Clip Len", r.sampling.clip_len, a.clip_len),
            ("Sampling: Frame Interval", r.sampling.frame_interval, a.frame_interval),
        ):
            need(got == want, key, f"must equal the architecture's {want}", got)
        need(
            len(r.mean) == a.in_channels and len(r.std) == a.in_channels,
            "Mean/Std",
            f"need {a.in_channels} values each",
            (r.mean, r.std),
        )
    need(r.sampling.num_clips >= 1, "Sampling: Num Clips", "must be 1 or more", r.sampling.num_clips)
    need(r.resize_short is None or r.resize_short >= 1, "Resize Short", "must be positive or null", r.resize_short)
    need(r.out_size >= 1, "Out Size", "must be positive", r.out_size)
    lo, hi = r.crop.area
    need(0 < lo <= hi <= 1, "Crop: Area", "must be [low, high] with 0 < low <= high <= 1", r.crop.area)
    lo, hi = r.crop.aspect
    need(0 < lo <= hi, "Crop: Aspect", "must be [low, high] with 0 < low <= high", r.crop.aspect)
    need(0 <= r.flip_ratio <= 1, "Flip Ratio", "must be in [0, 1]", r.flip_ratio)
    labels = [x for pair in r.flip_label_map for x in pair]
    need(
        all(0 <= x < e.num_classes for x in labels),
        "Flip Label Map",
        f"labels must be in [0, {e.num_classes})",
        r.flip_labels,
    )
    need(all(x > 0 for x in r.std), "Std", "must be positive", r.std)
    need(r.val.num_clips >= 1, "Val: Num Clips", "must be 1 or more", r.val.num_clips)
    need(
        r.val.resize_short is None or r.val.resize_short >= 1,
        "Val: Resize Short",
        "must be positive or null",
        r.val.resize_short,
    )
    need(r.val.crop_size >= 1, "Val: Crop Size", "must be positive", r.val.crop_size)
    for key, value in (
        ("Val Interval", r.val_interval),
        ("Save Interval", r.save_interval),
        ("Log Interval", r.log_interval),
    ):
        need(value >= 1, key, "must be 1 or more", value)
    need(r.runnable or bool(r.note), "Note", "must say why a recipe with 'Runnable: false' cannot be rerun", r.note)
