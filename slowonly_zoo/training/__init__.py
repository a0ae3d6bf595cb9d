"""Training and fine-tuning SlowOnly models the way mmaction2 0.24.1 + mmcv 1.7.0 trained them (pure PyTorch).

``fit(TrainOptions(...))`` runs an entry's recipe (what ``slowonly-zoo train`` calls); the other names are its parts:
lr schedules, SGD and clipping, one train step, the train/val pipelines, ImageNet inflation, the work dir files.
"""

from __future__ import annotations

from .checkpoints import CheckpointMeta, WorkDir
from .inflate import InflationError, InflationReport, inflate_imagenet
from .optim import OptimError, build_sgd, clip_grad_norm
from .schedule import LrSchedule, LrScheduleError, LrScheduler, lr_at
from .step import StepResult, TrainStepError, train_step
from .trainer import FitResult, Trainer, TrainOptions, fit
from .transforms import (
    TrainPipeline,
    TrainTransformError,
    random_resized_crop_box,
    train_clip_indices,
    train_clip_offsets,
    val_clip_indices,
    val_pipeline,
)

__all__ = [
    "CheckpointMeta",
    "FitResult",
    "InflationError",
    "InflationReport",
    "LrSchedule",
    "LrScheduleError",
    "LrScheduler",
    "OptimError",
    "StepResult",
    "TrainOptions",
    "TrainPipeline",
    "TrainStepError",
    "TrainTransformError",
    "Trainer",
    "WorkDir",
    "build_sgd",
    "clip_grad_norm",
    "fit",
    "inflate_imagenet",
    "lr_at",
    "random_resized_crop_box",
    "train_clip_indices",
    "train_clip_offsets",
    "train_step",
    "val_clip_indices",
    "val_pipeline",
]
