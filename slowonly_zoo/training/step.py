"""One training iteration, as mmaction2 0.24.1's ``Recognizer3D.train_step`` + mmcv 1.7.0's ``OptimizerHook`` do it.

forward -> ``CrossEntropyLoss`` on the head's logits (mmaction2 ``BaseHead.loss``, loss weight 1) -> ``zero_grad``
-> backward -> clip the global gradient norm -> ``optimizer.step()``. Top-1/top-5 accuracy are logged from the same
logits, as mmaction2's head does (``top_k_accuracy``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainStepError
from .optim import clip_grad_norm

__all__ = ["StepResult", "TrainStepError", "top_k_accuracy", "train_step"]


@dataclass(frozen=True)
class StepResult:
    """What one step logs: the loss, the gradient norm before clipping and the batch accuracies (0..1)."""

    loss: float
    grad_norm: float
    top1_acc: float
    top5_acc: float


def top_k_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest logits (all classes when ``k`` exceeds them)."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clips: torch.Tensor,
    labels: torch.Tensor,
    *,
    max_norm: float | None,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> StepResult:
    """Train ``model`` on one batch: ``clips`` float ``(N, C, T, H, W)``, ``labels`` int64 ``(N,)``.

    ``max_norm``: clip the global L2 gradient norm to it (``None``: no clipping; the norm is still reported).
    ``autocast_dtype`` (e.g. ``torch.bfloat16`` / ``torch.float16``) runs the forward under ``torch.autocast``; the
    loss is computed in float32. ``scaler`` (a ``torch.amp.GradScaler``, for float16) scales the loss, unscales the
    gradients before clipping and skips the update on inf/NaN gradients. The model's train/eval mode is left as is.
    """
    if clips.dim() != 5:
        raise TrainStepError(f"clips must be (N, C, T, H, W), got shape {tuple(clips.shape)}")
    labels = labels.reshape(-1).to(device=clips.device, dtype=torch.long)
    if labels.shape[0] != clips.shape[0]:
        raise TrainStepError(f"got {clips.shape[0]} clips but {labels.shape[0]} labels; give one label per clip")
    autocast = (
        torch.autocast(device_type=clips.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with autocast:
        logits = model(clips)
    logits = logits.float()
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = clip_grad_norm(model.parameters(), max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    with torch.no_grad():
        detached = logits.detach()
        top1 = top_k_accuracy(detached, labels, 1)
        top5 = top_k_accuracy(detached, labels, 5)
    return StepResult(loss=float(loss.detach()), grad_norm=grad_norm, top1_acc=top1, top5_acc=top5)
