"""The evaluation loop: run a model over a test dataset with upstream's clip averaging, resumably and in parallel.

:func:`evaluate` is the engine (any model, any dataset of ``Sample``-like items); :func:`slowonly_zoo.evaluation.verify`
builds the model and dataset for a zoo entry and calls it.

Speed: decoding and preprocessing run in DataLoader worker processes while the model runs; the views of several
videos are stacked into one batch of up to ``batch_views`` views; the model runs in channels_last_3d; on CUDA the
batch is staged in pinned memory, copied asynchronously, run whole with cudnn benchmark (and bf16 autocast with
``amp=True``), and the results of one batch are collected while the next one runs; on CPU the batch goes through the
model one view at a time (:func:`slowonly_zoo.runtime.forward_views`), which is faster there. Batches are
fixed groups of consecutive videos of the list (see :func:`evaluate`), so the numbers do not depend on the number of
processes or on interruptions.

Clip averaging (``average_clips='prob'`` of the SlowOnly configs' ``test_cfg``; mmaction2 0.x
``mmaction/models/recognizers/base.py`` ``average_clip``): per view softmax over classes, then the mean over the
video's views, in float32, exactly as ``Recognizer3D`` does. FAIR's protocols choose the activation (sigmoid for
Charades) and the combination (PySlowFast's sum or max over views); a ``'pyslowfast'`` head already outputs
probabilities (see :mod:`slowonly_zoo.models.ensemble`).

Distributed: under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) process ``rank`` takes the batches (groups of
consecutive videos) whose number is ``rank`` modulo ``N``, writes its own record file, and rank 0 merges them, so
every video counts exactly once (process group and merging: :mod:`slowonly_zoo.evaluation.distributed`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.dataset import TestDataset
from ..errors import BadInputError
from ..models.ensemble import combine_views, outputs_probabilities, view_scores
from ..runtime import amp_dtype_name, check_amp, forward_views, resolve_device
from .distributed import DistContext, merge_records, setup_distributed
from .metrics import compute_metrics
from .scores import ScoreStore, ScoreTable, VideoRecord, check_run_info, read_records

__all__ = [
    "DEFAULT_BATCH_VIEWS",
    "BadInputError",
    "EvalDataset",
    "EvalResult",
    "EvalSample",
    "evaluate",
    "videos_per_batch",
]

DEFAULT_BATCH_VIEWS = 60
"""Views per batch by default: two 30-view videos (on CUDA one forward pass; on CPU one view per pass)."""


class EvalSample(Protocol):
    """One item of an :class:`EvalDataset` (as :class:`slowonly_zoo.data.dataset.Sample`): the video's ``id`` and
    ``label``, its views ``(V, C, T, H, W)`` (float32; uint8 with a device-side ``transform``), or ``None`` and the
    ``error`` saying why."""

    @property
    def id(self) -> str: ...

    @property
    def label(self) -> int: ...

    @property
    def views(self) -> torch.Tensor | np.ndarray | None: ...

    @property
    def error(self) -> str | None: ...


class EvalDataset(Protocol):
    """What :func:`evaluate` runs over (as :class:`slowonly_zoo.data.dataset.TestDataset`): ``len()`` and
    ``dataset[i]`` giving an :class:`EvalSample`."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> EvalSample: ...


@dataclass
class EvalResult:
    """What an evaluation produced. Metrics are in percent, over the videos that could be evaluated."""

    out_dir: Path
    scores_path: Path
    table: ScoreTable
    metrics: dict[str, float] | None
    """``top1``, ``top5``, ``mean_class_accuracy`` (percent); None when no video could be evaluated."""
    num_listed: int
    """Videos in the annotation list."""
    num_selected: int
    """Videos asked for (the first ``limit`` of the list, or all)."""
    num_resumed: int = 0
    """Videos whose results came from an earlier (interrupted) run in the same output folder."""
    seconds: float = 0.0
    """Wall time of this run's evaluation loop (all ranks)."""
    videos_per_second: float = 0.0
    device: str = "cpu"
    world_size: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    """The content of ``results.json`` (set by :func:`slowonly_zoo.evaluation.verify`)."""
    results_path: Path | None = None

    @property
    def num_evaluated(self) -> int:
        return int(self.table.ids.shape[0])

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(video id, reason) of each video that could not be evaluated."""
        return self.table.failed

    @property
    def num_failed(self) -> int:
        return len(self.table.failed_ids)

    @property
    def verdict(self) -> str | None:
        return None if self.report is None else self.report.get("verdict")


# --------------------------------------------------------------------------------------------------- data side


@dataclass
class _Failure:
    """Stands in for a dataset Sample when reading the item raised an exception."""

    id: str
    label: int
    views: None = None
    error: str | None = None


class _Indexed(Dataset):
    """The items ``indices`` of ``dataset``, each as ``(annotation index, sample)``; exceptions become failures."""

    def __init__(self, dataset: EvalDataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[int, EvalSample]:
        i = self.indices[j]
        try:
            return i, self.dataset[i]
        except Exception as err:  # noqa: BLE001 - a bad item must not stop the run; it is recorded with its reason
            sid, label = f"<annotation line {i + 1}>", -1
            if isinstance(self.dataset, TestDataset):  # it keeps the parsed list
                with contextlib.suppress(IndexError):
                    sid, label = self.dataset.annotations[i].id, self.dataset.annotations[i].label
            return i, _Failure(id=sid, label=label, error=f"{type(err).__name__}: {err}")


def _identity(x: tuple[int, EvalSample]) -> tuple[int, EvalSample]:
    return x


def _worker_init(_: int) -> None:
    # Only torch's own pool: it is rebuilt safely after fork. Never touch OpenCV's thread pool here: if the parent
    # process used it (e.g. mmaction2's pipeline ran before), cv2.setNumThreads in the forked worker waits forever
    # on a lock whose owner thread was not forked.
    torch.set_num_threads(1)


def _views_of(sample: EvalSample, raw_ok: bool) -> tuple[torch.Tensor | None, str | None]:
    """The sample's views as a (V, C, T, H, W) tensor (float32; or uint8 when ``raw_ok``, for a device-side
    transform), or None and the reason it has none."""
    err = sample.error
    views = sample.views
    if err is not None or views is None:
        return None, str(err) if err is not None else "no views were produced"
    t = torch.as_tensor(views)
    if t.dim() != 5 or t.shape[0] == 0:
        return None, f"views have shape {tuple(t.shape)}, expected (views, channels, frames, height, width)"
    if t.dtype == torch.uint8 and raw_ok:
        return t, None
    if not t.is_floating_point():
        raise TypeError(
            f"the dataset gave {t.dtype} views; evaluate() needs normalised float views, or uint8 views together "
            "with transform= (e.g. slowonly_zoo.data.pipeline.normalize_views)"
        )
    return t.float(), None


def _unscorable(probs: np.ndarray, label: int) -> str | None:
    """Why a video's averaged probabilities cannot be scored (they are not all finite, or its label is not one of
    the model's classes), or None: such a video is recorded as failed, never counted as a miss."""
    finite = np.isfinite(probs)
    if not finite.all():
        nan = int(np.isnan(probs).sum())
        inf = int(probs.size - finite.sum()) - nan
        return (
            f"the model's scores are not finite ({nan} NaN, {inf} infinite of {probs.size}); check the checkpoint "
            "and the input (a NaN in the weights or an overflow under --amp)"
        )
    if not 0 <= label < probs.shape[-1]:
        return f"label {label} is outside the model's {probs.shape[-1]} classes (0..{probs.shape[-1] - 1})"
    return None


# --------------------------------------------------------------------------------------------------- model side


@dataclass
class _Batch:
    """Videos whose views were stacked into one forward pass, with their results on the way to the host."""

    items: list[tuple[int, EvalSample, int]]  # (annotation index, sample, number of views)
    probs: torch.Tensor | None = None  # (videos, K) float32, on the host once ``event`` has fired
    event: torch.cuda.Event | None = None


@dataclass(frozen=True)
class _Scoring:
    """How per-view outputs become a video's scores (:mod:`slowonly_zoo.models.ensemble`)."""

    activation: str = "softmax"
    ensemble: str = "mean"
    probabilities: bool = False  # the model's outputs already are scores ('pyslowfast' head)


class _Engine:
    """Runs stacked views through the model; per view activation, per video combination (float32)."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        batch_views: int,
        amp: bool,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        scoring: _Scoring | None = None,
    ) -> None:
        self.device = device
        self.batch_views = batch_views
        self.amp = amp
        self.transform = transform
        self.cuda = device.type == "cuda"
        self.scoring = scoring or _Scoring()
        self.model = model.eval().to(device).to(memory_format=torch.channels_last_3d)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) host tensor → per-view scores (B, K) float32 on the device."""
        out = forward_views(self.model, x, self.device, self.batch_views, transform=self.transform, amp=self.amp)
        return view_scores(out, self.scoring.activation, self.scoring.probabilities)

    def launch(self, items: list[tuple[int, EvalSample, torch.Tensor]]) -> _Batch:
        sizes = [v.shape[0] for _, _, v in items]
        if self.cuda:
            first = items[0][2]
            staged = torch.empty((sum(sizes), *first.shape[1:]), dtype=first.dtype, pin_memory=True)
            torch.cat([v for _, _, v in items], out=staged)
        else:
            staged = items[0][2] if len(items) == 1 else torch.cat([v for _, _, v in items])
        try:
            probs = self.probabilities(staged)
        except torch.cuda.OutOfMemoryError as err:
            raise RuntimeError(
                f"out of GPU memory running {staged.shape[0]} views at once; lower --batch-views (now "
                f"{self.batch_views}) or use --amp"
            ) from err
        per_video = torch.stack([combine_views(p, self.scoring.ensemble) for p in torch.split(probs, sizes)])
        batch = _Batch(items=[(i, s, n) for (i, s, _), n in zip(items, sizes)])
        if self.cuda:
            batch.probs = per_video.to("cpu", non_blocking=True)
            batch.event = torch.cuda.Event()
            batch.event.record()
        else:
            batch.probs = per_video
        return batch

    @staticmethod
    def finish(batch: _Batch) -> list[tuple[int, EvalSample, int, np.ndarray]]:
        if batch.event is not None:
            batch.event.synchronize()
        assert batch.probs is not None
        probs = batch.probs.numpy()
        return [(i, s, n, probs[k].copy()) for k, (i, s, n) in enumerate(batch.items)]


def _default_workers(device: torch.device) -> int:
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cpus)
    return min(2, max(0, cpus // 2))


# --------------------------------------------------------------------------------------------------- evaluate


def videos_per_batch(dataset: EvalDataset, batch_views: int, views_per_video: int | None) -> int:
    """How many consecutive videos make one batch: ``batch_views // views_per_video`` (at least 1), with
    ``views_per_video`` from a :class:`~slowonly_zoo.data.dataset.TestDataset`'s protocol when not given (other
    datasets: one video per batch)."""
    if views_per_video is None and isinstance(dataset, TestDataset):
        views_per_video = dataset.protocol.num_views
    if not views_per_video:
        return 1
    return max(1, batch_views // int(views_per_video))


def evaluate(
    model: nn.Module,
    dataset: EvalDataset,
    *,
    out_dir: str | Path,
    batch_views: int = DEFAULT_BATCH_VIEWS,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    limit: int | None = None,
    strict: bool = False,
    progress: bool | None = None,
    run_info: dict[str, Any] | None = None,
    retry_failed: bool = False,
    views_per_video: int | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    score_activation: str = "softmax",
    view_ensemble: str = "mean",
    model_outputs_probabilities: bool | None = None,
    metrics_fn: Callable[[ScoreTable], dict[str, float]] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` with upstream's ``average_clips='prob'``; resumable; torchrun-aware.

    Batches are fixed groups of consecutive videos of the annotation list (``batch_views // views_per_video`` videos
    each, the failed ones left out), whatever the number of processes and whatever an interrupted run had already
    finished, so on CPU a resumed or distributed run gives bit-identical scores to a single uninterrupted one (on
    CUDA, cudnn's benchmark mode may pick other kernels from run to run: equal to float rounding).

    Args:
        model: maps a float (B, C, T, H, W) batch of views to logits (B, K).
        dataset: ``len()`` and ``dataset[i]`` → an item with ``id``, ``label``, ``views`` (float32 (V, C, T, H, W) or
            None) and ``error`` (the reason when ``views`` is None), such as ``slowonly_zoo.data.TestDataset``.
        out_dir: where the per-video records, ``run.json`` and ``scores.npz`` go. Results already recorded there
            (by an interrupted run of the same evaluation) are reused, not recomputed.
        batch_views: most views per batch; views of several videos are stacked up to this. On CUDA a batch is one
            forward pass; on CPU it runs one view at a time (faster there; see ``views_per_forward``).
        num_workers: DataLoader processes decoding and preprocessing (0: in this process). Default: up to 8 on
            CUDA, up to 2 on CPU.
        device: ``"cuda"``, ``"cpu"``, a torch.device, or None for CUDA when available.
        amp: bf16 autocast for the model (the softmax and the averaging stay float32).
        limit: evaluate only the first ``limit`` videos of the list.
        strict: raise :class:`BadInputError` on the first video that cannot be read, instead of recording it.
        progress: show a progress bar (videos/s, ETA) on rank 0; None: when stderr is a terminal (see
            :mod:`slowonly_zoo.progress`; ``SLOWONLY_ZOO_QUIET=1`` turns it off whatever is passed).
        run_info: what identifies this evaluation (model, checkpoint hash, protocol, ...); stored in ``run.json``,
            and a resumed run must match it.
        retry_failed: redo videos that an earlier run recorded as failed (e.g. after fixing the files).
        views_per_video: views each video yields (default: ``dataset.num_views`` or ``dataset.protocol.num_views``
            when present, else one video per batch).
        transform: applied on the device to each batch of views before the model; with it the dataset may give
            uint8 views (normalised on the GPU: 4x fewer bytes through shared memory, pinning and PCIe).
        score_activation, view_ensemble: the protocol's per-view activation ('softmax' or 'sigmoid') and
            combination over views ('mean', 'sum' (reported as sum / views) or 'max');
            :mod:`slowonly_zoo.models.ensemble`.
        model_outputs_probabilities: the model's outputs are already scores (a 'pyslowfast' head: no activation
            is applied on top); None: read from the model (:func:`~slowonly_zoo.models.ensemble.outputs_probabilities`).
        metrics_fn: the metrics of the merged :class:`ScoreTable` (default: top-1, top-5, mean class accuracy).

    Returns:
        An :class:`EvalResult` (identical on every rank).
    """
    if batch_views < 1:
        raise ValueError(f"batch_views must be >= 1, got {batch_views}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    check_amp(dev, amp)  # before any work: bf16 where the CPU would emulate it is refused
    ctx = setup_distributed(dev)
    try:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        num_listed = len(dataset)
        num_selected = num_listed if limit is None else min(limit, num_listed)
        info = {"num_videos": num_listed, "amp": bool(amp), **(run_info or {})}
        if ctx.rank == 0:
            check_run_info(out_dir, info)
        ctx.barrier()
        if ctx.rank != 0:
            check_run_info(out_dir, info)
        done = read_records(out_dir)
        ctx.barrier()  # every rank has read the folder before any rank appends to it
        finished = {i for i, r in done.items() if i < num_selected and (r.ok or not retry_failed)}
        per_batch = videos_per_batch(dataset, batch_views, views_per_video)
        groups = [range(s, min(s + per_batch, num_selected)) for s in range(0, num_selected, per_batch)]
        mine = [g for k, g in enumerate(groups) if k % ctx.world_size == ctx.rank and any(i not in finished for i in g)]

        workers = _default_workers(dev) if num_workers is None else num_workers
        probabilities = (
            outputs_probabilities(model) if model_outputs_probabilities is None else model_outputs_probabilities
        )
        error: BaseException | None = None
        t0 = time.perf_counter()
        processed = 0
        try:
            processed = _run_shard(
                model,
                dataset,
                mine,
                finished,
                out_dir,
                ctx,
                dev,
                batch_views,
                workers,
                amp,
                strict,
                progress,
                transform,
                _Scoring(score_activation, view_ensemble, probabilities),
            )
        except Exception as err:  # noqa: BLE001 - let the other ranks stop too, then re-raise
            error = err
        if not ctx.all_true(error is None):
            if error is not None:
                raise error
            raise RuntimeError("another torchrun process failed (see its traceback); this one stops too")
        seconds = time.perf_counter() - t0
        total_processed = ctx.sum(float(processed))
        seconds = ctx.sum(seconds) / ctx.world_size if ctx.enabled else seconds

        scores_path, table = merge_records(ctx, out_dir, num_selected)
        if not table.ids.shape[0]:
            metrics = None
        else:
            metrics = metrics_fn(table) if metrics_fn is not None else compute_metrics(table.scores, table.labels)
        return EvalResult(
            out_dir=out_dir,
            scores_path=scores_path,
            table=table,
            metrics=metrics,
            num_listed=num_listed,
            num_selected=num_selected,
            num_resumed=len(finished),
            seconds=seconds,
            videos_per_second=total_processed / seconds if seconds > 0 else 0.0,
            device=str(dev),
            world_size=ctx.world_size,
            settings={
                "batch_views": batch_views,
                "videos_per_batch": per_batch,
                "num_workers": workers,
                "amp": bool(amp),
                "dtype": amp_dtype_name(amp),
                "strict": strict,
            },
        )
    finally:
        ctx.close()


def _run_shard(
    model: nn.Module,
    dataset: EvalDataset,
    groups: list[range],
    finished: set[int],
    out_dir: Path,
    ctx: DistContext,
    device: torch.device,
    batch_views: int,
    num_workers: int,
    amp: bool,
    strict: bool,
    progress: bool | None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    scoring: _Scoring | None = None,
) -> int:
    """Evaluate this rank's video groups, appending each new result to its record file. Returns how many.

    A group is one forward pass (or more, for videos with more than ``batch_views`` views). A group that an earlier
    run finished in part is recomputed whole, so that its batch is the same, but only its unfinished videos are
    recorded.
    """
    from ..progress import progress_bar

    engine = _Engine(model, device, batch_views, amp, transform, scoring)
    indices = [i for g in groups for i in g]
    group_of = {i: k for k, g in enumerate(groups) for i in g}
    loader = DataLoader(
        _Indexed(dataset, indices),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=cast("Callable[[list[Any]], Any]", _identity),  # batch_size=None: one item at a time
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
    )
    todo = sum(1 for i in indices if i not in finished)
    desc = "verify" if not ctx.enabled else f"verify (rank 0 of {ctx.world_size})"
    bar = progress_bar(
        total=todo, unit="video", desc=desc, progress=progress, disable=ctx.rank != 0 or todo == 0, dynamic_ncols=True
    )
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    processed = 0
    failed = 0
    current = -1
    pending: list[tuple[int, EvalSample, torch.Tensor]] = []
    inflight: _Batch | None = None

    with ScoreStore(out_dir, rank=ctx.rank) as store:

        def record(rec: VideoRecord) -> None:
            nonlocal processed, failed
            if rec.index in finished:  # recomputed only to keep its group's batch unchanged
                return
            store.append(rec)
            processed += 1
            failed += not rec.ok
            bar.update(1)
            if failed:
                bar.set_postfix(failed=failed, refresh=False)

        def complete(batch: _Batch | None) -> None:
            if batch is None:
                return
            for i, sample, n, probs in engine.finish(batch):
                reason = _unscorable(probs, int(sample.label))
                if reason is None:
                    record(VideoRecord(i, str(sample.id), int(sample.label), "ok", scores=probs, views=n))
                    continue
                if strict and i not in finished:
                    raise BadInputError(
                        f"video {str(sample.id)!r} (annotation line {i + 1}) cannot be scored: {reason}. "
                        "Run without --strict to record it as failed and go on."
                    )
                record(VideoRecord(i, str(sample.id), int(sample.label), "failed", error=reason))

        def launch(items: list[tuple[int, EvalSample, torch.Tensor]]) -> None:
            nonlocal inflight
            batch = engine.launch(items)  # runs (asynchronously on CUDA) while the previous batch is collected
            complete(inflight)
            inflight = batch

        def flush() -> None:
            nonlocal pending
            # one forward pass per run of equally shaped views (they all are, for one protocol)
            start = 0
            for k in range(1, len(pending) + 1):
                if k == len(pending) or pending[k][2].shape[1:] != pending[start][2].shape[1:]:
                    launch(pending[start:k])
                    start = k
            pending = []

        try:
            with torch.inference_mode():
                for i, sample in loader:
                    if group_of[i] != current:
                        flush()
                        current = group_of[i]
                    views, reason = _views_of(sample, raw_ok=transform is not None)
                    if views is None:
                        sid = str(sample.id)
                        if strict and i not in finished:
                            raise BadInputError(
                                f"video {sid!r} (annotation line {i + 1}) cannot be evaluated: {reason}. "
                                "Fix or remove it, or run without --strict to record it and go on."
                            )
                        record(VideoRecord(i, sid, int(sample.label), "failed", error=reason))
                        continue
                    pending.append((i, sample, views))
                flush()
                complete(inflight)
                inflight = None
        finally:
            bar.close()
            torch.backends.cudnn.benchmark = cudnn_benchmark
    return processed
