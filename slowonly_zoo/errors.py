"""Every exception slowonly-zoo raises on purpose, under one base class.

Each class keeps the builtin parent callers may already catch (``KeyError`` for an unknown name, ``ValueError``
for a bad value, ``RuntimeError`` for a failed operation), and all of them derive from :class:`SlowOnlyZooError`,
so ``except slowonly_zoo.SlowOnlyZooError`` catches exactly the errors whose message is a complete sentence for the
user (what went wrong, and what to do instead). The command line prints those without a traceback. (The layout
follows huggingface_hub's ``errors.py``: one module, one base, builtin parents kept.)

The modules that raise them re-export the names they always had (``slowonly_zoo.index.UnknownModelError``,
``slowonly_zoo.weights.download.DownloadError``, ...), so either import works. This module imports nothing but
the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = [
    "AnnotationError",
    "BadInputError",
    "CLIError",
    "CheckpointMismatchError",
    "ChecksumMismatchError",
    "ConfigError",
    "DeviceError",
    "DownloadError",
    "EmulatedBf16Error",
    "ExportCheckError",
    "ExportError",
    "FrameReadError",
    "HTTPAccessError",
    "InferenceError",
    "InflationError",
    "LrScheduleError",
    "MirrorError",
    "MissingExtraError",
    "ModelIndexError",
    "ModelOptionError",
    "OptimError",
    "PlotLogError",
    "RecipeError",
    "ResumeError",
    "RunMismatchError",
    "ScoreMismatchError",
    "SlowOnlyZooError",
    "TrainDataError",
    "TrainError",
    "TrainStepError",
    "TrainTransformError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "UnsupportedModelError",
    "UnsupportedProtocolError",
    "VideoDecodeError",
    "WeightsFileError",
    "WeightsNotFoundError",
]


class SlowOnlyZooError(Exception):
    """Base of every error slowonly-zoo raises on purpose; its message says what to do instead."""


# --------------------------------------------------------------------------------------------------
# configuration and command line
# --------------------------------------------------------------------------------------------------


class ConfigError(SlowOnlyZooError, ValueError):
    """A ``SLOWONLY_ZOO_*`` environment variable holds a value of the wrong kind (see :mod:`slowonly_zoo.config`)."""


class CLIError(SlowOnlyZooError, ValueError):
    """A user error found by the command line itself (a bad combination of options); exit status 1."""


# --------------------------------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------------------------------


class ModelIndexError(SlowOnlyZooError, ValueError):
    """A malformed index file or entry, or a name that clashes with one already in the index."""


class RecipeError(ModelIndexError):
    """A train recipe that cannot be used as asked (e.g. an impossible total batch for the linear scaling rule)."""


class UnknownModelError(SlowOnlyZooError, KeyError):
    """No model has this name or alias. ``suggestions`` holds the closest canonical names."""

    def __init__(self, name: str, suggestions: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions: tuple[str, ...] = tuple(suggestions)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError.__str__ would repr() the bare key
        msg = f"unknown SlowOnly model {self.name!r}."
        if self.suggestions:
            msg += " Did you mean: " + ", ".join(self.suggestions) + "?"
        return msg + " See slowonly_zoo.list_models() (or `slowonly-zoo list`) for every name."


class ModelOptionError(SlowOnlyZooError, ValueError):
    """``create_model`` was asked for something it cannot build as asked: a file path passed as the model name
    (pass it as ``checkpoint_path=``), or class names that do not fit the head."""


class UnsupportedModelError(SlowOnlyZooError, ValueError):
    """The index records this model only to say why the zoo cannot build it (``ModelEntry.unsupported``)."""


class UnsupportedProtocolError(SlowOnlyZooError, ValueError):
    """An option or a piece of an entry's test protocol that does not fit it (e.g. mmaction2's ``--sampling``
    offsets asked of a FAIR protocol, or a sampling the data layer does not know); the message names it."""


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------


class CheckpointMismatchError(SlowOnlyZooError, RuntimeError):
    """A state dict does not fit the model: the message names every missing, unexpected or mis-shaped key."""


class UnsafeCheckpointError(SlowOnlyZooError, RuntimeError):
    """A ``.pth`` file holds objects that only arbitrary unpickling could restore; it is not loaded."""


class WeightsFileError(SlowOnlyZooError, ValueError):
    """A weights file cannot be used as given: not a regular file (a FIFO, a device), empty, truncated, damaged,
    not a checkpoint at all, or named with a sha256 prefix its bytes do not have. The message names the file."""


class ExportError(SlowOnlyZooError, ValueError):
    """``export`` / ``register`` would write where it should not: a non-empty output folder without ``force``, a
    file there that an earlier export did not write, or an index entry that already exists."""


class ExportCheckError(SlowOnlyZooError, RuntimeError):
    """A deployment export (ONNX, torch.export, TorchScript) did not load back, or its logits differ from the eager
    model's by more than the tolerance; the file is not kept."""


class DownloadError(SlowOnlyZooError, RuntimeError):
    """A download failed; the message says why and what to try next. No file is left at the destination."""


class HTTPAccessError(DownloadError):
    """The server answered with a definitive refusal (404/410 not found, 401/403 forbidden): not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not hash to the expected sha256 prefix (the file was deleted)."""


class MirrorError(SlowOnlyZooError, ValueError):
    """``mirror`` cannot write what was asked: a model not in the cache, a cached model whose original file was
    not kept (a mirror must serve the original bytes), or a file in the folder that differs (without ``force``).
    Nothing is written then."""


class WeightsNotFoundError(SlowOnlyZooError, RuntimeError):
    """No source produced verified weights. ``attempts`` lists each source tried and why it failed
    (:class:`slowonly_zoo.weights.sources.SourceAttempt` records)."""

    def __init__(self, message: str, name: str, attempts: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.attempts = attempts


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


class AnnotationError(SlowOnlyZooError, ValueError):
    """A malformed annotation line (``path`` and 1-based ``line`` say where)."""

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str, text: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        shown = f": {text!r}" if text else ""
        super().__init__(f"{self.path}, line {line}: {reason}{shown}")


class VideoDecodeError(SlowOnlyZooError, RuntimeError):
    """A video could not be opened or decoded. ``path`` is the file, ``reason`` what went wrong."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path!r}: {reason}")


class FrameReadError(SlowOnlyZooError, RuntimeError):
    """A frame file is missing or cannot be decoded. ``path`` names the file, ``reason`` what went wrong."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read frame {self.path!r}: {reason}")


# --------------------------------------------------------------------------------------------------
# inference and evaluation
# --------------------------------------------------------------------------------------------------


class InferenceError(SlowOnlyZooError, ValueError):
    """A user-facing problem with the inputs or options (wrong modality, bad list file, ...)."""


class DeviceError(SlowOnlyZooError, ValueError):
    """A device torch does not know (``--device gpu``), or one this machine does not have (CUDA without a GPU)."""


class EmulatedBf16Error(DeviceError):
    """``--amp`` (bf16) asked for on a CPU without native bf16, where torch would emulate it slower than fp32."""


class BadInputError(SlowOnlyZooError, RuntimeError):
    """A video could not be turned into views (``strict=True`` turns the first such video into this error)."""


class RunMismatchError(SlowOnlyZooError, RuntimeError):
    """The output folder holds results of a different evaluation, so they cannot be resumed."""


class ScoreMismatchError(SlowOnlyZooError, ValueError):
    """The score files to fuse do not cover the same videos, labels or classes."""


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


class TrainError(SlowOnlyZooError, ValueError):
    """A training run that cannot start as asked (the message says what to pass instead)."""


class TrainDataError(SlowOnlyZooError, ValueError):
    """The training data cannot be used as given (the message names the file, and the line where there is one)."""


class TrainTransformError(SlowOnlyZooError, ValueError):
    """An impossible train-pipeline setting or input."""


class TrainStepError(SlowOnlyZooError, ValueError):
    """A batch that cannot be trained on as given."""


class OptimError(SlowOnlyZooError, ValueError):
    """An impossible optimizer setting."""


class LrScheduleError(SlowOnlyZooError, ValueError):
    """An impossible schedule or position in it."""


class InflationError(SlowOnlyZooError, ValueError):
    """A 2D state dict that cannot be inflated into this model."""


class ResumeError(SlowOnlyZooError, ValueError):
    """``--resume`` cannot continue from this work dir (no state, or the state of another model or head)."""


class PlotLogError(SlowOnlyZooError, ValueError):
    """A log file that is not one JSON record per line with the upstream keys, or an impossible figure size."""


class MissingExtraError(SlowOnlyZooError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""
