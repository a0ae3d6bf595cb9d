"""The trainer: one zoo entry's upstream recipe run on your data, on one device or many processes (``torchrun``).

``fit(TrainOptions(...))`` (or ``slowonly-zoo train``, a thin call into it) does what mmaction2 0.24.1's
``tools/train.py`` + mmcv 1.7.0's ``EpochBasedRunner`` do for a SlowOnly config:

* data: the recipe's train pipeline (``training.transforms.TrainPipeline``) in DataLoader workers, sample ``i`` of
  epoch ``e`` drawing from its own generator ``(seed, e, i)`` (``training.data``); a ``DistributedSampler``
  (shuffled, ``set_epoch`` every epoch; also for one process, so the order is a function of the seed and epoch);
* model: ``--init`` scratch (mmaction2's ``ResNet3d`` / ``I3DHead`` init), ``imagenet:PATH`` (torchvision ResNet-50
  inflated, ``training.inflate``), a zoo name or a checkpoint (through ``slowonly_zoo.create_model``; a head of
  another size is replaced explicitly and logged); dropout before the fc as the recipe says;
* optimisation: SGD (weight decay on every parameter), the lr of every iteration from the recipe's mmcv lr hook
  (``training.schedule``), CrossEntropy, global-norm gradient clipping (``training.step``); lr default = the recipe's
  lr scaled linearly to the actual total batch (the seed README's note);
* every ``val_interval`` epochs: the val pipeline (1 clip, centre crop), top-1 / top-5 / mean class accuracy as
  ``verify`` computes them (``evaluation.metrics``);
* the work dir (``training.checkpoints``): ``epoch_N.safetensors`` + ``epoch_N.pth`` and ``latest.pt`` (resume)
  every ``save_interval`` epochs and at the end, ``best.safetensors``, ``recipe.json``, ``log.jsonl``;
* ``test_best``: at the end, ``verify``'s full test protocol of the entry (``evaluation.verification.verify``) on
  ``best.safetensors`` over the val list (or ``test_ann_file``), its report in ``WORK_DIR/test_best/``.

``log.jsonl`` holds one record per logging interval with the keys of upstream's ``log.json`` (mmcv 1.7.0
``TextLoggerHook``): ``mode`` ``"train"``, ``epoch`` (1-based), ``iter`` (1-based, within the epoch), ``lr``,
``memory`` (MB: peak CUDA memory, or the process's peak RSS on CPU), ``data_time``, ``top1_acc``, ``top5_acc``,
``loss_cls``, ``loss``, ``grad_norm``, ``time`` (averages over the interval, accuracies as fractions, losses
averaged over the ranks as mmaction2's ``_parse_losses`` does); and after each validation a ``mode`` ``"val"`` record
with ``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` (fractions). Unlike mmcv (``ignore_last=True``) the last,
shorter interval of an epoch is logged too.

Reproducibility: ``seed`` seeds the model init, the sampler, the per-sample draws and, at the start of each epoch,
torch's RNG (dropout) from ``(seed, epoch, rank)``; so a run resumed from ``latest.pt`` (saved with every
checkpoint) continues exactly as the uninterrupted run would (bit for bit on the CPU; ``deterministic`` also asks
torch for deterministic kernels on CUDA).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins the process group
(``evaluation.distributed``: NCCL on CUDA, gloo on CPU), the model is wrapped in ``DistributedDataParallel``,
BatchNorm stays per process as upstream (``sync_bn`` converts it to ``SyncBatchNorm``), and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..errors import TrainError
from ..evaluation.distributed import DistContext, setup_distributed
from ..evaluation.metrics import compute_metrics
from ..evaluation.runner import EvalResult
from ..index import ModelEntry, get_model_info
from ..index.recipes import TrainRecipe
from ..runtime import resolve_device
from .checkpoints import CheckpointMeta, WorkDir, write_text
from .data import BadSample, TrainDataset, TrainItem, ValDataset, load_items, train_collate
from .optim import build_sgd
from .schedule import LrSchedule, LrScheduler
from .step import train_step

__all__ = ["FitResult", "TrainError", "TrainOptions", "Trainer", "fit"]

logger = logging.getLogger("slowonly_zoo.training")

LOG_KEYS_TRAIN = (
    "mode",
    "epoch",
    "iter",
    "lr",
    "memory",
    "data_time",
    "top1_acc",
    "top5_acc",
    "loss_cls",
    "loss",
    "grad_norm",
    "time",
)
"""The keys of a train record, in upstream ``log.json``'s order."""


@dataclass
class TrainOptions:
    """Everything a training run needs; ``None`` means "the recipe's value" (see ``slowonly-zoo train --help``).

    ``recipe`` replaces the entry's ``train_recipe`` (e.g. ``dataclasses.replace(entry.train_recipe, ...)`` for small
    inputs). ``ann_file`` None (or a folder) reads a folder-per-class layout. ``freeze_bn`` keeps every BatchNorm in
    eval mode (running statistics fixed, affine parameters still trained). ``log_interval`` (default: the recipe's)
    is mmcv's ``log_config.interval`` (iterations per log record).
    """

    name: str
    data_root: str | os.PathLike[str]
    work_dir: str | os.PathLike[str]
    ann_file: str | os.PathLike[str] | None = None
    val_ann_file: str | os.PathLike[str] | None = None
    val_data_root: str | os.PathLike[str] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    num_classes: int | None = None
    init: str | None = None
    amp: bool = False
    seed: int = 0
    deterministic: bool = False
    num_workers: int | None = None
    resume: bool = False
    val_interval: int | None = None
    save_interval: int | None = None
    max_iters: int | None = None
    sync_bn: bool = False
    device: str | None = None
    log_interval: int | None = None
    source_format: str = "auto"
    recipe: TrainRecipe | None = None
    class_names: Sequence[str] | None = None
    freeze_bn: bool = False
    progress: bool | None = None
    test_best: bool = False
    test_ann_file: str | os.PathLike[str] | None = None
    test_data_root: str | os.PathLike[str] | None = None


@dataclass
class FitResult:
    """What a run did (on every rank; ``work_dir`` files are written by rank 0 only)."""

    work_dir: Path
    epochs_done: int
    iters_done: int
    lr: float
    lr_derivation: str
    best_top1: float | None
    best_epoch: int | None
    last_val: dict[str, float] | None
    bad_samples: list[BadSample]
    class_names: tuple[str, ...] | None
    model: nn.Module
    final_loss: float | None = None
    epoch_indices: list[list[int]] = field(default_factory=list)
    """Per epoch run here, the dataset indices this rank trained on, in order."""
    test: EvalResult | None = None
    """``test_best``: ``verify``'s result on ``best.safetensors`` (its ``report`` set); None otherwise."""


# -- recipe access ----------------------------------------------------------------------------------------------


def _val_sizes(recipe: TrainRecipe) -> tuple[int | None, int]:
    return recipe.val.resize_short, int(recipe.val.crop_size)


def recipe_snapshot(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe as JSON-ready data (the dataclass fields; tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe), default=str))


# -- model initialisation ------------------------------------------------------------------------------------------


def _same_architecture(a: ModelEntry, b: ModelEntry) -> bool:
    fa, fb = a.architecture, b.architecture
    return (
        fa is not None
        and fb is not None
        and (fa.depth, fa.non_local, fa.with_pool1)
        == (
            fb.depth,
            fb.non_local,
            fb.with_pool1,
        )
    )


def build_model(
    entry: ModelEntry, init: str, num_classes: int, dropout: float, say: Callable[[str], None]
) -> nn.Module:
    """The model to train, initialised as ``init`` says (see the module docstring)."""
    from ..factory import build_architecture, create_model

    if init == "scratch":
        model = build_architecture(entry, num_classes=num_classes, dropout=dropout)  # upstream's init (models/)
        say("init: from scratch (mmaction2's ResNet3d/I3DHead init)")
        return model
    if init == "imagenet" or init.startswith("imagenet:"):
        path = init.partition(":")[2]
        if not path:
            raise TrainError(
                f"{entry.name}'s recipe starts from ImageNet weights: pass --init imagenet:PATH with a torchvision "
                "resnet50 state dict file (e.g. resnet50-0676ba61.pth from download.pytorch.org), or --init scratch"
            )
        from .inflate import inflate_imagenet

        if not Path(path).is_file():
            raise TrainError(f"--init imagenet:{path}: no such file; pass a torchvision resnet50 state dict file")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        model = build_architecture(entry, num_classes=num_classes, dropout=dropout)
        report = inflate_imagenet(state, model)
        say(f"init: ImageNet ResNet-50 inflated from {path}: {report.summary()}")
        return model
    source = Path(init)
    if source.exists():
        from ..weights.adapt import state_dict_num_classes
        from ..weights.checkpoint import read_state_dict

        loaded_classes = state_dict_num_classes(read_state_dict(source))
        model = create_model(entry.name, checkpoint_path=source, num_classes=num_classes, dropout=dropout)
        what = f"checkpoint {source}"
    else:
        init_entry = get_model_info(init)
        if not _same_architecture(init_entry, entry):
            raise TrainError(
                f"--init {init}: {init_entry.name} is another architecture than {entry.name}; pick a zoo entry "
                "with the same depth and blocks, a checkpoint file, imagenet:PATH or scratch"
            )
        loaded_classes = init_entry.num_classes
        model = create_model(init_entry.name, pretrained=True, num_classes=num_classes, dropout=dropout)
        what = f"zoo weights of {init_entry.name}"
    if loaded_classes != num_classes:
        say(f"init: {what}; head replaced ({loaded_classes} -> {num_classes} classes, normal(std=0.01) init)")
    else:
        say(f"init: {what}")
    model.train()
    return model


# -- small helpers ---------------------------------------------------------------------------------------------------


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _memory_mb(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) // (1024 * 1024))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # Linux: KiB


def _rng_state() -> dict[str, Any]:
    np_state: Any = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class _SkipSampler(Sampler[int]):
    """The indices of ``sampler`` after the first ``skip`` (resuming inside an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        for k, index in enumerate(self.sampler):
            if k >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


class PipelineTransform:
    """``(path, item, rng) -> (clip, label)`` through a ``TrainPipeline`` (picklable, for DataLoader workers)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def __call__(self, path: Path, item: TrainItem, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        return self.pipeline(path, item.label, rng, item.total_frames)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _reduce_mean(ctx: DistContext, values: Sequence[float]) -> list[float]:
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    torch.distributed.all_reduce(t, group=ctx.group)
    return (t / ctx.world_size).tolist()


def _gather(ctx: DistContext, obj: Any) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, obj, group=ctx.group)
    return out


# -- the trainer -------------------------------------------------------------------------------------------------------


class Trainer:
    """One training run (see the module docstring); :meth:`run` does it. ``print_fn`` gets the human-readable
    lines (rank 0 only)."""

    def __init__(self, options: TrainOptions, print_fn: Callable[[str], None] | None = print) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.ctx = setup_distributed(self.device)
        self.rank0 = self.ctx.rank == 0
        self._print = print_fn
        self.work = WorkDir(options.work_dir)
        self.entry = get_model_info(options.name)
        recipe = options.recipe if options.recipe is not None else getattr(self.entry, "train_recipe", None)
        if recipe is None:
            raise TrainError(
                f"{self.entry.name} has no training recipe (an ensemble, or not in the index); train one of its "
                "members or another entry"
            )
        self.recipe = recipe
        self.best_top1: float | None = None
        self.best_epoch: int | None = None
        self._resume_rng: Mapping[str, Any] | None = None
        if not recipe.runnable:
            self.say(f"note: {self.entry.name}'s recipe cannot be rerun as published: {recipe.note}")

    def say(self, text: str) -> None:
        if self.rank0 and self._print is not None:
            self._print(text)

    # -- setup ------------------------------------------------------------------------------------------------------

    def _setup_seed(self) -> None:
        o = self.options
        if o.seed < 0:
            raise TrainError(f"--seed must be a non-negative integer, got {o.seed}")
        random.seed(o.seed)
        np.random.seed(o.seed % 2**32)
        torch.manual_seed(o.seed)
        if o.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

    def _setup_data(self) -> None:
        o, entry, recipe = self.options, self.entry, self.recipe
        folder_layout = o.ann_file is None or Path(o.ann_file).is_dir()
        num_classes = o.num_classes
        if num_classes is None and not folder_layout:
            num_classes = entry.num_classes
        items, names = load_items(o.ann_file, o.data_root, num_classes, o.class_names)
        if num_classes is None:
            num_classes = len(names or ())
        if names is None and num_classes == entry.num_classes and len(entry.labels) == num_classes:
            names = tuple(entry.labels)
        if names is not None and len(names) != num_classes:
            if folder_layout:
                names = tuple(names) + tuple(str(k) for k in range(len(names), num_classes))
            else:
                raise TrainError(f"{len(names)} class names for {num_classes} classes; give one name per class")
        self.num_classes = int(num_classes)
        self.class_names = names
        self.train_items = items
        # a folder-per-class source: its items are relative to that folder
        self.train_root = (
            Path(o.ann_file) if o.ann_file is not None and Path(o.ann_file).is_dir() else Path(o.data_root)
        )
        self.val_items: list[TrainItem] = []
        self.val_root = Path(o.val_data_root if o.val_data_root is not None else o.data_root)
        if o.val_ann_file is not None:
            if Path(o.val_ann_file).is_dir():
                self.val_root = Path(o.val_ann_file)
            self.val_items, _ = load_items(
                o.val_ann_file, self.val_root, self.num_classes, names if folder_layout else None
            )
        clip_len, frame_interval, num_clips = (
            recipe.sampling.clip_len,
            recipe.sampling.frame_interval,
            recipe.sampling.num_clips,
        )
        protocol = entry.protocol
        modality: Literal["rgb", "flow"] = (
            "flow" if entry.architecture and entry.architecture.modality == "flow" else "rgb"
        )
        from .transforms import TrainPipeline

        pipeline = TrainPipeline(
            clip_len,
            frame_interval,
            num_clips=num_clips,
            resize_short=recipe.resize_short,
            out_size=recipe.out_size,
            flip_ratio=recipe.flip_ratio,
            flip_label_map=recipe.flip_labels or None,
            mean=recipe.mean,
            std=recipe.std,
            modality=modality,
            area_range=recipe.crop.area,
            aspect_range=recipe.crop.aspect,
            source_format=o.source_format,
            filename_tmpl=protocol.filename_tmpl if protocol else None,
            start_index=protocol.start_index if protocol and protocol.data_format == "rawframes" else 1,
        )
        self.train_pipeline = pipeline
        self.dataset = TrainDataset(
            items, self.train_root, PipelineTransform(pipeline), seed=o.seed, source_format=o.source_format
        )
        self.batch_size = int(o.batch_size or recipe.videos_per_gpu)
        if self.batch_size <= 0:
            raise TrainError(f"--batch-size must be positive, got {self.batch_size}")
        self.sampler: DistributedSampler[Any] = DistributedSampler(
            self.dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank, shuffle=True, seed=o.seed
        )
        cpus = os.cpu_count() or 1
        self.num_workers = (
            int(o.num_workers) if o.num_workers is not None else min(4, max(0, cpus // self.ctx.world_size - 1))
        )
        self.iters_per_epoch = math.ceil(len(self.sampler) / self.batch_size)
        if protocol is not None:
            val_resize, val_crop = _val_sizes(recipe)
            self.val_protocol = dataclasses.replace(
                protocol,
                num_clips=1,
                crop="center",
                clip_len=clip_len,
                frame_interval=frame_interval,
                resize_short=val_resize,
                crop_size=val_crop,
                mean=tuple(recipe.mean),
                std=tuple(recipe.std),
            )

    def _loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        sampler: Sampler[int] = self.sampler
        if skip_batches:
            sampler = _SkipSampler(self.sampler, skip_batches * self.batch_size)
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=train_collate,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
            worker_init_fn=_worker_init if self.num_workers else None,
            generator=torch.Generator().manual_seed(_derived_seed(self.options.seed, epoch, 1)),
        )

    def _setup_model(self) -> None:
        o, recipe = self.options, self.recipe
        init = o.init if o.init is not None else recipe.init
        self.init = init
        dropout = float(recipe.dropout)
        model = build_model(self.entry, init, self.num_classes, dropout, self.say)
        model.to(self.device)
        if o.sync_bn and self.device.type == "cpu":
            raise TrainError(
                "--sync-bn needs GPUs (torch's SyncBatchNorm has no CPU kernel); drop it to keep BatchNorm per "
                "process, as upstream trains"
            )
        if o.sync_bn and not self.ctx.enabled:
            self.say("note: --sync-bn has no effect in a single process")
        if o.sync_bn and self.ctx.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.say("BatchNorm: synchronised across processes (--sync-bn)")
        self.model = model
        self.train_model: nn.Module = model
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        total_batch = self.batch_size * self.ctx.world_size
        if o.lr is not None:
            self.lr = float(o.lr)
            self.lr_derivation = f"lr {self.lr:g} (--lr)"
        else:
            self.lr = recipe.scaled_lr(total_batch)
            processes = f"{self.ctx.world_size} process{'es' if self.ctx.world_size > 1 else ''}"
            self.lr_derivation = f"{recipe.describe_lr(total_batch)}; total batch = {processes} x {self.batch_size}"
        self.optimizer = build_sgd(model, self.lr, recipe.momentum, recipe.weight_decay)
        self.epochs = int(o.epochs or recipe.epochs)
        if self.epochs <= 0:
            raise TrainError(f"--epochs must be positive, got {self.epochs}")
        self.scheduler = LrScheduler(
            self.optimizer,
            LrSchedule.from_policy(recipe.schedule),
            iters_per_epoch=self.iters_per_epoch,
            max_epochs=self.epochs,
        )
        self.max_norm = None if recipe.clip_max_norm is None else float(recipe.clip_max_norm)
        self.scaler = None
        self.autocast_dtype = None
        if o.amp:
            if self.device.type == "cuda":
                self.autocast_dtype = torch.float16
                self.scaler = torch.amp.GradScaler("cuda")
            else:
                self.autocast_dtype = torch.bfloat16

    # -- state -------------------------------------------------------------------------------------------------------

    def _state(self, epochs_done: int, global_iter: int) -> dict[str, Any]:
        return {
            "model_name": self.entry.name,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "epoch": epochs_done,
            "iter": global_iter,
            "iter_in_epoch": global_iter - epochs_done * self.iters_per_epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "log_size": self.work.log.stat().st_size if self.work.log.exists() else 0,
            "rng": _rng_state(),
            "seed": self.options.seed,
            "total_batch": self.batch_size * self.ctx.world_size,
        }

    def _resume(self) -> tuple[int, int]:
        state = self.work.load_latest(self.entry.name, self.num_classes)
        if int(state["total_batch"]) != self.batch_size * self.ctx.world_size:
            raise TrainError(
                f"--resume: the run was trained with a total batch of {state['total_batch']}, this one has "
                f"{self.batch_size * self.ctx.world_size}; resume with the same --batch-size and process count"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best_top1 = state.get("best_top1")
        self.best_epoch = state.get("best_epoch")
        _set_rng_state(state["rng"])
        self._resume_rng = state["rng"]
        if self.rank0:
            self.work.truncate_log(int(state["log_size"]))
        self.ctx.barrier()
        self.say(f"resumed from {self.work.latest}: epoch {state['epoch']}, iteration {state['iter']}")
        return int(state["epoch"]), int(state["iter"])

    def _meta(self, epoch: int, global_iter: int) -> CheckpointMeta:
        return CheckpointMeta(self.entry.name, epoch, global_iter, self.num_classes, self.class_names)

    def _write_log(self, record: Mapping[str, Any]) -> None:
        if not self.rank0:
            return
        with open(self.work.log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def _snapshot(self) -> dict[str, Any]:
        o = self.options
        return {
            "model": self.entry.name,
            "recipe": recipe_snapshot(self.recipe),
            "effective": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "world_size": self.ctx.world_size,
                "total_batch": self.batch_size * self.ctx.world_size,
                "lr": self.lr,
                "lr_derivation": self.lr_derivation,
                "num_classes": self.num_classes,
                "class_names": list(self.class_names) if self.class_names is not None else None,
                "init": self.init,
                "iters_per_epoch": self.iters_per_epoch,
                "max_norm": self.max_norm,
                "train_pipeline": repr(self.train_pipeline),
            },
            "options": {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in vars(o).items() if k != "recipe"},
        }

    # -- validation ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Top-1 / top-5 / mean class accuracy (percent) on the val list; ``None`` without one."""
        if not self.val_items:
            return None
        dataset = ValDataset(self.val_protocol, self.val_items, self.val_root, self.options.source_format)
        shard = torch.utils.data.Subset(dataset, list(range(self.ctx.rank, len(dataset), self.ctx.world_size)))
        from ..data.dataset import collate

        loader = DataLoader(shard, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate)
        model = self.model
        was_training = model.training
        model.eval()
        rows: list[tuple[int, np.ndarray, int]] = []
        failed: list[str] = []
        position = self.ctx.rank
        for samples in loader:
            good = []
            for sample in samples:
                if sample.views is None:
                    failed.append(f"{sample.id} ({sample.error})")
                else:
                    good.append((position, sample))
                position += self.ctx.world_size
            if not good:
                continue
            x = torch.cat([s.views for _, s in good]).to(self.device, non_blocking=True)
            with self._autocast():
                probs = torch.softmax(model(x).float(), dim=1).cpu().numpy()
            rows.extend((pos, probs[k], s.label) for k, (pos, s) in enumerate(good))
        model.train(was_training)
        if self.options.freeze_bn:
            _freeze_bn(model)
        gathered_rows = [r for part in _gather(self.ctx, rows) for r in part]
        gathered_failed = [f for part in _gather(self.ctx, failed) for f in part]
        if gathered_failed:
            self.say(f"validation: {len(gathered_failed)} unreadable video(s) left out: {gathered_failed[:5]}")
        if not gathered_rows:
            self.say("validation: no readable video; no metrics")
            return None
        gathered_rows.sort(key=lambda r: r[0])
        scores = np.stack([r[1] for r in gathered_rows])
        labels = np.array([r[2] for r in gathered_rows], dtype=np.int64)
        return compute_metrics(scores, labels)

    def _autocast(self) -> Any:
        import contextlib

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # -- the loop ------------------------------------------------------------------------------------------------------

    def run(self) -> FitResult:
        """Train (or resume) to the end, then (``test_best``) test the best checkpoint; returns what was done."""
        try:
            result = self._run()
        finally:
            self.ctx.close()
        if self.options.test_best:
            result.test = self.test_best()
        return result

    def _test_source(self) -> tuple[Path, Path]:
        """(annotation list, data root) ``test_best`` runs on: ``test_ann_file`` or the val list; a folder-per-class
        source becomes a list in the work dir (``id label`` lines, or ``id frames label`` for rawframe items)."""
        o = self.options
        source = o.test_ann_file if o.test_ann_file is not None else o.val_ann_file
        if source is None:
            raise TrainError("--test-best needs --val-ann-file (it picks best.safetensors) or --test-ann-file")
        if not Path(source).is_dir():
            root = o.test_data_root if o.test_data_root is not None else self.val_root
            return Path(source), Path(root)
        folder = Path(source)
        items, _ = load_items(folder, folder, self.num_classes, self.class_names)
        lines = "".join(
            f"{item.id} {item.label}\n"
            if item.total_frames is None
            else f"{item.id} {item.total_frames} {item.label}\n"
            for item in items
        )
        return write_text(self.work.test_dir / "test_list.txt", lines), folder

    def test_best(self) -> EvalResult:
        """``verify``'s full test protocol of the entry on ``best.safetensors``; report in ``WORK_DIR/test_best/``."""
        from ..evaluation.verification import verify

        o = self.options
        if not self.work.best.exists():
            raise TrainError(
                f"--test-best: {self.work.best} was not written (no validation produced metrics); check the "
                "validation list, or drop --test-best"
            )
        ann_file, data_root = self._test_source()
        protocol = self.entry.protocol
        assert protocol is not None  # checked before training
        self.say(
            f"testing {self.work.best} with {self.entry.name}'s test protocol ({protocol.num_clips} clips x "
            f"{protocol.crop} crop) on {ann_file}"
        )
        if self.num_classes != self.entry.num_classes:
            self.say(f"note: the reported numbers below are {self.entry.name}'s on {self.entry.dataset}, not this data")
        return verify(
            self.entry.name,
            data_root,
            ann_file,
            checkpoint=self.work.best,
            source_format=o.source_format,
            out=self.work.test_dir,
            num_workers=self.num_workers,
            device=o.device,
            progress=o.progress,
            print_fn=self._print if self.rank0 else None,
        )

    def _run(self) -> FitResult:
        o = self.options
        self._setup_seed()
        self._setup_data()
        self._setup_model()
        self.best_top1 = None
        self.best_epoch = None
        val_interval = int(o.val_interval or self.recipe.val_interval)
        save_interval = int(o.save_interval or self.recipe.save_interval)
        self.log_interval = int(o.log_interval or self.recipe.log_interval)
        if min(val_interval, save_interval, self.log_interval) <= 0:
            raise TrainError("--val-interval, --save-interval and the log interval must be positive")
        if o.max_iters is not None and o.max_iters <= 0:
            raise TrainError(f"--max-iters must be positive, got {o.max_iters}")
        if o.test_best and not self.val_items:
            raise TrainError("--test-best needs --val-ann-file: validation picks the best checkpoint it tests")
        if o.test_best and self.entry.protocol is None:
            raise TrainError(f"--test-best: {self.entry.name} has no test protocol to run; drop --test-best")
        if self.rank0:
            self.work.create()
        start_epoch, global_iter = 0, 0
        self._resume_rng = None
        if o.resume:
            start_epoch, global_iter = self._resume()
        elif self.rank0 and self.work.log.exists():
            self.work.log.unlink()
        if self.rank0:
            self.work.save_recipe(self._snapshot())
        self.say(
            f"training {self.entry.name}: {len(self.train_items)} videos, {self.num_classes} classes, "
            f"{self.epochs} epochs x {self.iters_per_epoch} iterations, batch {self.batch_size} x "
            f"{self.ctx.world_size} process{'es' if self.ctx.world_size > 1 else ''} on {self.device}"
        )
        self.say(self.lr_derivation)
        bad_all: list[BadSample] = []
        epoch_indices: list[list[int]] = []
        last_val: dict[str, float] | None = None
        final_loss: float | None = None
        epochs_done = start_epoch
        stop = False
        for epoch in range(start_epoch, self.epochs):
            skip = global_iter - epoch * self.iters_per_epoch
            if skip and self._resume_rng is not None:
                _set_rng_state(self._resume_rng)  # resuming inside the epoch (a --max-iters stop): its RNG as saved
            else:
                torch.manual_seed(_derived_seed(o.seed, epoch, self.ctx.rank, 2))  # dropout draws of this epoch
            bad, indices, loss, stop, global_iter = self._train_epoch(epoch, global_iter, skip)
            final_loss = loss
            epoch_indices.append(indices)
            bad_all.extend(bad)
            complete = global_iter == (epoch + 1) * self.iters_per_epoch
            epochs_done = epoch + 1 if complete else epoch
            last_epoch = epoch + 1 == self.epochs or stop
            if self.val_items and ((epoch + 1) % val_interval == 0 or last_epoch):
                metrics = self.validate()
                if metrics is not None:
                    last_val = metrics
                    self._log_val(epoch + 1, metrics)
                    if self.best_top1 is None or metrics["top1"] > self.best_top1:
                        self.best_top1, self.best_epoch = metrics["top1"], epoch + 1
                        if self.rank0:
                            self.work.save_best(
                                self.model.state_dict(), self._meta(epoch + 1, global_iter), metrics["top1"]
                            )
            if self.rank0 and ((epoch + 1) % save_interval == 0 or last_epoch):
                # as mmcv's CheckpointHook: the resumable state goes with each checkpoint (every save_interval)
                self.work.save_epoch(self.model.state_dict(), self._meta(epoch + 1, global_iter))
                self.work.save_latest(self._state(epochs_done, global_iter))
            self.ctx.barrier()
            if stop:
                break
        if epochs_done == start_epoch and start_epoch >= self.epochs:
            self.say(f"nothing to do: the run in {self.work.path} already finished its {self.epochs} epochs")
        return FitResult(
            work_dir=self.work.path,
            epochs_done=epochs_done,
            iters_done=global_iter,
            lr=self.lr,
            lr_derivation=self.lr_derivation,
            best_top1=self.best_top1,
            best_epoch=self.best_epoch,
            last_val=last_val,
            bad_samples=bad_all,
            class_names=self.class_names,
            model=self.model,
            final_loss=final_loss,
            epoch_indices=epoch_indices,
        )

    def _log_val(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write_log(
            {
                "mode": "val",
                "epoch": epoch,
                "iter": self.iters_per_epoch,
                "lr": self.optimizer.param_groups[0]["lr"],
                "top1_acc": metrics["top1"] / 100.0,
                "top5_acc": metrics["top5"] / 100.0,
                "mean_class_accuracy": metrics["mean_class_accuracy"] / 100.0,
            }
        )
        self.say(
            f"epoch {epoch} val: top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  "
            f"mean class accuracy {metrics['mean_class_accuracy']:.2f}"
        )

    def _progress(self, epoch: int) -> Any:
        show = self.options.progress
        if show is None:
            show = sys.stderr.isatty()
        if not (show and self.rank0):
            return None
        from tqdm import tqdm

        return tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch + 1}/{self.epochs}", unit="it", leave=True)

    def _train_epoch(
        self, epoch: int, global_iter: int, skip: int = 0
    ) -> tuple[list[BadSample], list[int], float | None, bool, int]:
        """Train epoch ``epoch`` from its iteration ``skip``; returns the replaced samples (all ranks), this rank's
        indices, the last loss, whether ``max_iters`` stopped it, and the global iteration count."""
        o = self.options
        model = self.train_model
        model.train()
        if o.freeze_bn:
            _freeze_bn(model)
        loader = self._loader(epoch, skip)
        bar = self._progress(epoch)
        if bar is not None and skip:
            bar.update(skip)
        bad: list[BadSample] = []
        indices: list[int] = []
        window: list[tuple[float, float, float, float, float, float]] = []
        epoch_loss: list[float] = []
        stop = False
        t_epoch = time.perf_counter()
        clips_done = 0
        t_last = time.perf_counter()
        iterator = iter(loader)
        for i in range(skip, self.iters_per_epoch):
            batch = next(iterator)
            t_data = time.perf_counter() - t_last
            for b in batch.bad:
                logger.warning(
                    "skipped unreadable training video %s (%s); replaced by item %d", b.id, b.error, b.replaced_by
                )
            bad.extend(batch.bad)
            indices.extend(batch.indices.tolist())
            lr = self.scheduler.step()
            clips = batch.clips.to(self.device, non_blocking=True)
            labels = batch.labels.to(self.device, non_blocking=True)
            result = train_step(
                model,
                self.optimizer,
                clips,
                labels,
                max_norm=self.max_norm,
                scaler=self.scaler,
                autocast_dtype=self.autocast_dtype,
            )
            loss, top1, top5 = _reduce_mean(self.ctx, (result.loss, result.top1_acc, result.top5_acc))
            global_iter += 1
            now = time.perf_counter()
            window.append((loss, top1, top5, result.grad_norm, t_data, now - t_last))
            epoch_loss.append(loss)
            t_last = now
            clips_done += clips.shape[0] * self.ctx.world_size
            last_in_epoch = i == self.iters_per_epoch - 1
            stop = o.max_iters is not None and global_iter >= o.max_iters
            if (i + 1) % self.log_interval == 0 or last_in_epoch or stop:
                self._log_train(epoch, i, lr, window)
                window = []
            if bar is not None:
                rate = f"{clips_done / (now - t_epoch):.1f}"
                bar.set_postfix({"loss": f"{loss:.4f}", "lr": f"{lr:.3g}", "clips/s": rate}, refresh=False)
                bar.update(1)
            if stop:
                break
        del iterator
        if bar is not None:
            bar.close()
        bad_epoch = [b for part in _gather(self.ctx, bad) for b in part]
        elapsed = time.perf_counter() - t_epoch
        mean_loss = f"{np.mean(epoch_loss):.4f}" if epoch_loss else "-"
        self.say(
            f"epoch {epoch + 1}/{self.epochs}: {len(epoch_loss)} iterations, mean loss {mean_loss}, "
            f"lr {self.optimizer.param_groups[0]['lr']:.4g}, {clips_done / max(elapsed, 1e-9):.1f} clips/s"
        )
        if bad_epoch:
            self.say(f"epoch {epoch + 1}: {len(bad_epoch)} unreadable training sample(s) replaced:")
            for b in bad_epoch:
                self.say(f"  {b.id}: {b.error}")
        return bad_epoch, indices, (epoch_loss[-1] if epoch_loss else None), stop, global_iter

    def _log_train(self, epoch: int, i: int, lr: float, window: Sequence[tuple[float, ...]]) -> None:
        arr = np.asarray(window, dtype=np.float64)
        mean = arr.mean(axis=0)
        memory = _memory_mb(self.device)
        if self.ctx.enabled:
            memory = int(max(_gather(self.ctx, memory)))
        record = {
            "mode": "train",
            "epoch": epoch + 1,
            "iter": i + 1,
            "lr": lr,
            "memory": memory,
            "data_time": float(mean[4]),
            "top1_acc": float(mean[1]),
            "top5_acc": float(mean[2]),
            "loss_cls": float(mean[0]),
            "loss": float(mean[0]),
            "grad_norm": float(mean[3]),
            "time": float(mean[5]),
        }
        self._write_log(record)


def fit(
    options: TrainOptions | None = None, *, print_fn: Callable[[str], None] | None = print, **kwargs: Any
) -> FitResult:
    """Run a training: ``fit(TrainOptions(...))`` or ``fit(name=..., data_root=..., work_dir=..., ...)``."""
    if options is None:
        options = TrainOptions(**kwargs)
    elif kwargs:
        options = dataclasses.replace(options, **kwargs)
    return Trainer(options, print_fn).run()
