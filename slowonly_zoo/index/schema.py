"""The ``model_index.yml`` schema (Title Case keys, the OpenMMLab / Papers-with-Code model-index layout where it
fits): reading entries from YAML with errors that name the file, entry and key, validating them, and writing them
back (:func:`entry_to_index`, used by ``tools/build_index.py``). The one reader of index files: the packaged index,
``SLOWONLY_ZOO_EXTRA_INDEX`` files and :func:`~slowonly_zoo.index.register_model_entry` dicts all go through
:func:`entry_from_index`."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelIndexError
from .records import (
    _CROPS,
    FLOW_MEAN,
    FLOW_STD,
    RGB_MEAN,
    RGB_STD,
    Architecture,
    Checkpoint,
    ModelEntry,
    ReportedResult,
    TestProtocol,
)

__all__ = ["entry_from_index", "entry_to_index", "load_index_file", "parse_index_text", "validate_entry"]

_DEFAULT_NORM: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "rgb": (RGB_MEAN, RGB_STD),
    "flow": (FLOW_MEAN, FLOW_STD),
}
_IN_CHANNELS = {"rgb": 3, "flow": 2}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HEX8_RE = re.compile(r"^[0-9a-f]{8}$")
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
_METRIC_KEYS = (
    ("Top 1 Accuracy", "top1"),
    ("Top 5 Accuracy", "top5"),
    ("Mean Class Accuracy", "mean_class_accuracy"),
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
        "Alias": list(e.aliases),
        "Config": e.config,
        "Metadata": meta,
        "Results": [_result_to_index(r) for r in e.results],
        "Weights": e.checkpoint.url if e.checkpoint else None,
        "Dataset": e.dataset,
        "Num Classes": e.num_classes,
        "Label File": e.label_file,
    }
    if e.architecture is not None:
        out["Architecture"] = {k: getattr(e.architecture, f) for k, f in _ARCH_KEYS}
    if e.protocol is not None:
        out["Test Protocol"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, f in _PROTOCOL_KEYS for v in [getattr(e.protocol, f)]
        }
    if e.checkpoint is not None:
        out["Checkpoint"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, f in _CHECKPOINT_KEYS for v in [getattr(e.checkpoint, f)]
        }
    if e.members:
        out["Members"] = list(e.members)
        out["Member Weights"] = list(e.member_weights)
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


def entry_from_index(data: Mapping[str, Any], origin: str) -> ModelEntry:
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

    arch_f = f.sub("Architecture", required=not members)
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
        architecture = Architecture(**arch_kw)

    prot_f = f.sub("Test Protocol", required=not members)
    protocol = None
    if prot_f is not None:
        norm = prot_f.choice("Normalize", _DEFAULT_NORM)
        prot_kw: dict[str, Any] = {}
        for key, attr in _PROTOCOL_KEYS:
            if attr in ("mean", "std"):
                raw = prot_f.seq(key)
                default = _DEFAULT_NORM[norm][0 if attr == "mean" else 1]
                prot_kw[attr] = tuple(float(x) for x in raw) if raw else default
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
        protocol = TestProtocol(**prot_kw)

    ck_f = f.sub("Checkpoint", required=False)
    checkpoint = None
    if ck_f is not None:
        checkpoint = Checkpoint(
            url=ck_f.text("URL"),  # type: ignore[arg-type]
            filename=ck_f.text("Filename"),  # type: ignore[arg-type]
            sha256_prefix=ck_f.text("SHA256 Prefix"),  # type: ignore[arg-type]
            log_url=ck_f.text("Log", required=False),
            json_url=ck_f.text("JSON", required=False),
            hf_hub_id=ck_f.text("HF Hub ID", required=False),
            previous_filenames=tuple(str(x) for x in ck_f.seq("Previous Filenames")),
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
    elif e.architecture is None or e.protocol is None:
        raise ModelIndexError(f"{where}: 'Architecture' and 'Test Protocol' are required (no 'Members')")
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
    c = e.checkpoint
    if c is not None:
        if not _HEX8_RE.match(c.sha256_prefix):
            raise ModelIndexError(f"{where}: 'SHA256 Prefix' must be 8 lowercase hex digits, got {c.sha256_prefix!r}")
        if not c.url.endswith("/" + c.filename):
            raise ModelIndexError(f"{where}: checkpoint URL {c.url!r} does not end with its Filename {c.filename!r}")


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
