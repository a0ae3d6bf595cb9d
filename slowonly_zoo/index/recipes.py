"""Train recipes: how each model of the index was trained upstream, as immutable data.

One :class:`TrainRecipe` per entry with a 0.x config (``ModelEntry.train_recipe``), kept by hand in
``tools/build_index.py`` from the mmaction2 0.x configs as mmcv 1.7.0's ``Config.fromfile`` resolves them
(``tests/test_train_recipes.py`` checks every field against the configs shipped in the mmaction2 0.24.1 wheel) and
written to ``model_index.yml`` under ``Train Recipe:`` (:mod:`.schema`).

What the fields mean upstream (mmaction2 0.24.1, mmcv 1.7.0):

* optimisation: ``optimizer=dict(type='SGD', lr, momentum, weight_decay)`` (weight decay on every parameter,
  mmcv's ``DefaultOptimizerConstructor``), ``optimizer_config=dict(grad_clip=dict(max_norm, norm_type=2))``
  (``clip_grad_norm_`` over the parameters with gradients), ``lr_config`` (:class:`LrPolicy`),
  ``total_epochs``; the lr was set for ``lr_gpus`` GPUs x ``videos_per_gpu`` clips (the configs' comment "this lr
  is used for 8 gpus"); :meth:`TrainRecipe.scaled_lr` applies the linear scaling rule of the README's note 1;
* initialisation: ``scratch``, ``imagenet`` (``backbone.pretrained='torchvision://resnet50'``, inflated by
  ``ResNet3d.inflate_weights``) or the canonical name of the zoo entry whose checkpoint ``load_from`` names;
* the train pipeline: ``SampleFrames(clip_len, frame_interval, num_clips)`` in train mode, the entry's decoder,
  ``Resize(scale=(-1, resize_short))`` (absent when ``resize_short`` is None), ``RandomResizedCrop(area_range,
  aspect_ratio_range)``, ``Resize(scale=(out_size, out_size), keep_ratio=False)``, ``Flip(flip_ratio,
  flip_label_map)``, ``Normalize(mean, std)``, ``FormatShape('NCTHW')``; the data format (video or rawframes,
  file name template, start index) is the entry's test protocol's;
* the val pipeline (:class:`ValPipeline`): ``SampleFrames(test_mode=True, num_clips)``, ``Resize(-1,
  resize_short)``, ``CenterCrop(crop_size)``, ``Normalize``; ``evaluation.interval`` (``val_interval``, epochs),
  ``checkpoint_config.interval`` (``save_interval``, epochs), ``log_config.interval`` (``log_interval``,
  iterations).

Standard library only (the index never imports torch, nor the training package above it): the trainer turns
:attr:`TrainRecipe.schedule` into its lr schedule (``slowonly_zoo.training.schedule.LrSchedule.from_policy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import RecipeError

__all__ = [
    "INIT_IMAGENET",
    "INIT_SCRATCH",
    "CropRanges",
    "LrPolicy",
    "RecipeError",
    "TrainRecipe",
    "TrainSampling",
    "ValPipeline",
]

INIT_SCRATCH = "scratch"  #: random initialisation (mmcv's default init of every layer)
INIT_IMAGENET = "imagenet"  #: torchvision's ImageNet ResNet-50, inflated to 3D (``ResNet3d.inflate_weights``)


@dataclass(frozen=True)
class TrainSampling:
    """``SampleFrames`` in train mode (random offsets; mmaction2 0.24.1 ``SampleFrames._get_train_clips``)."""

    clip_len: int
    frame_interval: int
    num_clips: int = 1


@dataclass(frozen=True)
class CropRanges:
    """``RandomResizedCrop``'s ranges (mmaction2 0.24.1 ``RandomResizedCrop`` defaults; no config overrides them)."""

    area: tuple[float, float] = (0.08, 1.0)  #: crop area as a fraction of the frame area
    aspect: tuple[float, float] = (3 / 4, 4 / 3)  #: crop width / height, drawn log-uniformly


@dataclass(frozen=True)
class LrPolicy:
    """mmcv 1.7.0's ``lr_config``, in the fields of :class:`slowonly_zoo.training.schedule.LrSchedule`.

    ``policy='CosineAnnealing'`` -> ``"cosine"``, ``'step'`` -> ``"step"``; ``warmup_iters`` with
    ``warmup_by_epoch=True`` -> ``warmup_epochs``.
    """

    policy: Literal["cosine", "step"]
    by_epoch: bool = True
    steps: tuple[int, ...] = ()  #: step milestones in epochs
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup: Literal["linear"] | None = None
    warmup_epochs: float = 0
    warmup_ratio: float = 0.1

    def describe(self) -> str:
        """One line for humans, e.g. 'cosine to 0 per iteration, linear warmup 10 epochs from 0.1x'."""
        if self.policy == "cosine":
            text = f"cosine to {self.min_lr:g} per {'epoch' if self.by_epoch else 'iteration'}"
        else:
            text = f"step x{self.gamma:g} at epochs {', '.join(str(s) for s in self.steps)}"
        if self.warmup:
            text += f", {self.warmup} warmup {self.warmup_epochs:g} epochs from {self.warmup_ratio:g}x"
        return text


@dataclass(frozen=True)
class ValPipeline:
    """The val pipeline run every ``val_interval`` epochs: one clip in test mode, ``Resize(-1, resize_short)``
    (None: no resize), ``CenterCrop(crop_size)``."""

    resize_short: int | None
    crop_size: int
    num_clips: int = 1


@dataclass(frozen=True)
class TrainRecipe:
    """How one model was trained upstream (see the module docstring for each field's upstream source)."""

    config: str  #: the 0.x config, e.g. 'configs/recognition/slowonly/slowonly_r50_8x8x1_256e_kinetics400_rgb.py'
    gpus: str | None  #: the README's gpus column ('8x4' = 8 GPUs x 4 nodes); None where the README gives none
    videos_per_gpu: int  #: clips per GPU per iteration
    lr: float  #: SGD lr for ``lr_gpus`` GPUs x ``videos_per_gpu`` clips
    schedule: LrPolicy
    epochs: int  #: ``total_epochs``
    init: str  #: 'scratch', 'imagenet' or the canonical name of a zoo entry (``load_from``)
    sampling: TrainSampling
    resize_short: int | None  #: ``Resize(-1, resize_short)`` before the crop; None: no resize (K600/K700, Jester)
    out_size: int  #: ``Resize((out_size, out_size), keep_ratio=False)`` after the crop
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val: ValPipeline
    lr_gpus: int = 8  #: the GPU count the lr was set for
    momentum: float = 0.9
    weight_decay: float = 1e-4  #: on every parameter, BatchNorm and biases included
    clip_max_norm: float | None = 40.0  #: global L2 gradient clipping; None: no clipping
    dropout: float = 0.5  #: head dropout before the fc
    crop: CropRanges = field(default_factory=CropRanges)
    flip_ratio: float = 0.5
    flip_label_map: tuple[tuple[int, int], ...] = ()  #: (label, label when flipped) pairs (Jester)
    val_interval: int = 5  #: epochs between validations
    save_interval: int = 4  #: epochs between checkpoints
    log_interval: int = 20  #: iterations between log records
    runnable: bool = True  #: False where the recipe cannot be rerun as is (OmniSource's web data); see ``note``
    note: str | None = None

    # -- derived ----------------------------------------------------------------------------------

    @property
    def reference_batch(self) -> int:
        """The total batch the lr was set for: ``lr_gpus * videos_per_gpu``."""
        return self.lr_gpus * self.videos_per_gpu

    @property
    def flip_labels(self) -> dict[int, int]:
        """``flip_label_map`` as a dict (label -> label of the mirrored clip)."""
        return dict(self.flip_label_map)

    @property
    def init_kind(self) -> Literal["scratch", "imagenet", "checkpoint"]:
        """'scratch', 'imagenet', or 'checkpoint' when ``init`` names a zoo entry."""
        if self.init in (INIT_SCRATCH, INIT_IMAGENET):
            return self.init  # type: ignore[return-value]
        return "checkpoint"

    def scaled_lr(self, total_batch: int) -> float:
        """The lr for ``total_batch`` clips per iteration (all processes together), by the linear scaling rule:
        ``lr * total_batch / (lr_gpus * videos_per_gpu)`` (mmaction2 0.x README, note 1; Goyal et al. 2017)."""
        if isinstance(total_batch, bool) or not isinstance(total_batch, int) or total_batch < 1:
            raise RecipeError(
                f"the total batch must be a positive integer (processes x clips each), got {total_batch!r}"
            )
        return self.lr * total_batch / self.reference_batch

    def describe_lr(self, total_batch: int) -> str:
        """How :meth:`scaled_lr` got its number, for the trainer to print."""
        lr = self.scaled_lr(total_batch)
        return (
            f"lr {lr:g} = {self.lr:g} x {total_batch} / ({self.lr_gpus} x {self.videos_per_gpu}) "
            f"(the recipe's lr for {self.lr_gpus} GPUs x {self.videos_per_gpu} clips, scaled linearly to a total "
            f"batch of {total_batch})"
        )
