"""The training work dir: weights per epoch, the best weights, the resumable trainer state, the recipe snapshot.

Layout of ``WORK_DIR`` (every file written atomically through :mod:`slowonly_zoo._fileio`, so a killed run never
leaves a half-written file under a final name):

=========================  =========================================================================================
``epoch_N.safetensors``    this package's weights after epoch N (1-based), metadata below
``epoch_N.pth``            the same weights in mmaction2's layout, ``{'meta': {...}, 'state_dict': upstream keys}``
                           (what mmcv 1.7.0's ``save_checkpoint`` writes, without the optimizer), loadable by
                           mmaction2 and by ``slowonly_zoo.create_model(name, checkpoint_path=...)``
``best.safetensors``       the weights of the epoch with the best validation top-1 so far
``latest.pt``              the trainer state to resume from (model, optimizer, lr scheduler, epoch and iteration,
                           RNG states, AMP scaler, best top-1, the log position)
``recipe.json``            the effective recipe and options of the run
``log.jsonl``              one JSON record per logging interval and per validation (see ``trainer.py``)
``test_best/``             ``--test-best``: ``verify``'s ``results.json`` / ``scores.npz`` for ``best.safetensors``
=========================  =========================================================================================

Weights metadata (safetensors string metadata; the same values, typed, in the ``.pth``'s ``meta``): ``model`` (the
zoo entry trained), ``epoch``, ``iter`` (global iterations done), ``num_classes``, ``format`` =
``slowonly_zoo.training``, and the class names: a JSON list under ``slowonly_zoo.class_names`` in safetensors,
``meta['class_names']`` in the ``.pth`` (what ``create_model`` and ``predict`` read for this checkpoint's head).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._fileio import atomic_replace
from ..errors import ResumeError
from ..weights.checkpoint import CLASS_NAMES_METADATA_KEY, NUM_CLASSES_METADATA_KEY, save_safetensors
from ..weights.convert import zoo_to_upstream

__all__ = [
    "BEST_FILE",
    "LATEST_FILE",
    "LOG_FILE",
    "RECIPE_FILE",
    "CheckpointMeta",
    "ResumeError",
    "WorkDir",
    "atomic_write",
    "write_text",
]

LATEST_FILE = "latest.pt"
BEST_FILE = "best.safetensors"
RECIPE_FILE = "recipe.json"
TEST_DIR = "test_best"
LOG_FILE = "log.jsonl"
FORMAT = "slowonly_zoo.training"
STATE_VERSION = 1


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically with :func:`slowonly_zoo._fileio.atomic_replace`: ``write(tmp)`` fills a temporary
    file beside it, which then replaces ``path``; a failure leaves the old file (if any) untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(path) as tmp:
        write(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


@dataclass(frozen=True)
class CheckpointMeta:
    """What a saved weights file says about itself."""

    model: str
    epoch: int
    iter: int
    num_classes: int
    class_names: tuple[str, ...] | None = None

    def to_safetensors(self) -> dict[str, str]:
        out = {
            "format": FORMAT,
            "model": self.model,
            "epoch": str(self.epoch),
            "iter": str(self.iter),
            NUM_CLASSES_METADATA_KEY: str(self.num_classes),
        }
        if self.class_names is not None:
            out[CLASS_NAMES_METADATA_KEY] = json.dumps(list(self.class_names), ensure_ascii=False)
        return out

    def to_pth(self) -> dict[str, Any]:
        from .. import __version__

        # mmcv 1.7.0 mmcv/runner/checkpoint.py save_checkpoint: meta carries epoch/iter, mmcv_version and time;
        # mmaction2 0.x adds CLASSES when a dataset has them. Plain values only, so torch.load(weights_only=True)
        # reads it.
        meta: dict[str, Any] = {
            "format": FORMAT,
            "model": self.model,
            "epoch": self.epoch,
            "iter": self.iter,
            NUM_CLASSES_METADATA_KEY: self.num_classes,
            "slowonly_zoo_version": __version__,
            "time": time.asctime(),
        }
        if self.class_names is not None:
            meta["class_names"] = list(self.class_names)
            meta["CLASSES"] = list(self.class_names)
        return meta


class WorkDir:
    """The files of one training run (see the module docstring). Only rank 0 writes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- paths ----------------------------------------------------------------------------------------------------

    def epoch_weights(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch}.safetensors"

    def epoch_pth(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch}.pth"

    @property
    def best(self) -> Path:
        return self.path / BEST_FILE

    @property
    def latest(self) -> Path:
        return self.path / LATEST_FILE

    @property
    def recipe(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def test_dir(self) -> Path:
        return self.path / TEST_DIR

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    # -- weights --------------------------------------------------------------------------------------------------

    def save_epoch(self, state_dict: Mapping[str, torch.Tensor], meta: CheckpointMeta) -> tuple[Path, Path]:
        """Write ``epoch_N.safetensors`` and ``epoch_N.pth`` (upstream layout) for ``meta.epoch``."""
        tensors = _cpu(state_dict)
        st = atomic_write(
            self.epoch_weights(meta.epoch), lambda tmp: save_safetensors(tensors, tmp, meta.to_safetensors())
        )
        upstream = zoo_to_upstream(tensors)
        pth = atomic_write(
            self.epoch_pth(meta.epoch), lambda tmp: torch.save({"meta": meta.to_pth(), "state_dict": upstream}, tmp)
        )
        return st, pth

    def save_best(self, state_dict: Mapping[str, torch.Tensor], meta: CheckpointMeta, top1: float) -> Path:
        """Write ``best.safetensors`` (its metadata adds ``best_top1``, in percent)."""
        tensors = _cpu(state_dict)
        metadata = {**meta.to_safetensors(), "best_top1": repr(float(top1))}
        return atomic_write(self.best, lambda tmp: save_safetensors(tensors, tmp, metadata))

    # -- trainer state ----------------------------------------------------------------------------------------------

    def save_latest(self, state: Mapping[str, Any]) -> Path:
        """Write the resumable trainer state (``state`` must hold ``model_name``; plain values and tensors only)."""
        payload = {"version": STATE_VERSION, **state}
        return atomic_write(self.latest, lambda tmp: torch.save(payload, tmp))

    def load_latest(self, model_name: str, num_classes: int | None = None) -> dict[str, Any]:
        """The state to resume from; refuses a work dir without one, or one of another model or head size."""
        if not self.latest.exists():
            raise ResumeError(
                f"--resume: {self.path} has no {LATEST_FILE} (no finished epoch yet); run without --resume to start"
            )
        try:
            state = torch.load(self.latest, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
            raise ResumeError(
                f"--resume: cannot read {self.latest} ({type(exc).__name__}: {exc}); delete it to start over"
            ) from exc
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ResumeError(f"--resume: {self.latest} is not a slowonly-zoo trainer state of this version")
        if state.get("model_name") != model_name:
            raise ResumeError(
                f"--resume: {self.path} holds a run of {state.get('model_name')!r}, not {model_name!r}; "
                "pass that model's name or another --work-dir"
            )
        if num_classes is not None and int(state.get("num_classes", num_classes)) != num_classes:
            raise ResumeError(
                f"--resume: {self.path} was trained with {state.get('num_classes')} classes, not {num_classes}; "
                "pass the same --num-classes or another --work-dir"
            )
        return state

    # -- recipe and log ---------------------------------------------------------------------------------------------

    def save_recipe(self, snapshot: Mapping[str, Any]) -> Path:
        return write_text(self.recipe, json.dumps(snapshot, indent=2, ensure_ascii=False, default=str) + "\n")

    def truncate_log(self, size: int) -> None:
        """Cut ``log.jsonl`` back to ``size`` bytes (the records written up to the resumed state)."""
        if not self.log.exists():
            if size:
                raise ResumeError(f"--resume: {self.log} is missing but the saved state has written {size} bytes")
            return
        with open(self.log, "rb+") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())

    def saved_epochs(self) -> Sequence[int]:
        """Epoch numbers with an ``epoch_N.safetensors``, ascending."""
        out = []
        for p in self.path.glob("epoch_*.safetensors"):
            try:
                out.append(int(p.stem.split("_", 1)[1]))
            except ValueError:
                continue
        return sorted(out)


def _cpu(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
