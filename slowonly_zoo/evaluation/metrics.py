"""Recognition metrics, defined exactly as mmaction2 0.x defines them (``core/evaluation/accuracy.py``).

Both functions take the per-video class scores (N, K) and the ground-truth labels (N,). Results are fractions in
[0, 1]; reports multiply by 100.

Ties (equal scores), which matter only for degenerate models:

* :func:`top_k_accuracy` ranks classes with an ascending sort and keeps the last ``k``, so among equal scores the
  **higher class index ranks higher**. Upstream calls ``np.argsort`` with numpy's default (unstable, and on recent
  numpy SIMD-dispatched, so machine-dependent) sort; this module uses a stable sort, which gives upstream's result
  whenever the sort is order-preserving and is deterministic everywhere.
* :func:`mean_class_accuracy` predicts with ``argmax``, so among equal scores the **lower class index wins**.

So on an all-tied row top-1 (via the sort) picks the last class while mean class accuracy (via argmax) picks the
first, as upstream does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["compute_metrics", "confusion_matrix", "mean_class_accuracy", "top_k_accuracy"]


def _as_scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (videos, classes); got shape {s.shape}")
    if y.ndim != 1 or y.shape[0] != s.shape[0]:
        raise ValueError(
            f"labels must be a 1-D array with one label per row of scores ({s.shape[0]}); got shape {y.shape}"
        )
    if s.shape[0] == 0:
        raise ValueError("no videos to score: scores and labels are empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if (y < 0).any():
        raise ValueError(f"labels must be non-negative class indices; got {int(y.min())}")
    return s, y.astype(np.int64)


def top_k_accuracy(scores: ArrayLike, labels: ArrayLike, topk: Sequence[int] | int = (1, 5)) -> list[float]:
    """Fraction of videos whose label is among the ``k`` highest scores, for each ``k`` in ``topk``.

    A video counts as a hit for ``k`` when its label is in ``argsort(scores)[-k:]`` (see the module docstring for
    ties). ``k`` larger than the number of classes counts every video as a hit, as upstream's slicing does.
    """
    s, y = _as_scores_labels(scores, labels)
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    order = np.argsort(s, axis=1, kind="stable")
    out: list[float] = []
    for k in ks:
        if k < 1:
            raise ValueError(f"top-k needs k >= 1, got {k}")
        hits = (order[:, -k:] == y[:, None]).any(axis=1)
        out.append(float(hits.sum() / hits.shape[0]))
    return out


def confusion_matrix(pred: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts over the union of predicted and true classes, as upstream builds them.

    Returns ``(classes, matrix)``: the sorted class indices present in ``pred`` or ``labels``, and the integer matrix
    ``matrix[i, j]`` = number of videos with true class ``classes[i]`` predicted as ``classes[j]``.
    """
    p = np.asarray(pred, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"pred and labels must be 1-D arrays of one shape; got {p.shape} and {y.shape}")
    classes = np.unique(np.concatenate([p, y]))
    row = np.searchsorted(classes, y)
    col = np.searchsorted(classes, p)
    n = classes.shape[0]
    matrix = np.bincount(row * n + col, minlength=n * n).reshape(n, n)
    return classes, matrix


def mean_class_accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mean over classes of (correct / videos of that class), upstream's way.

    The classes averaged over are the union of the true labels and the argmax predictions; a class that is predicted
    but never the true label has no videos and contributes 0 to the mean (upstream's quirk, spec section 0 item 10),
    so a model that predicts classes outside the ground truth (e.g. the 400-way GYM99 heads) is penalised for it.
    """
    s, y = _as_scores_labels(scores, labels)
    pred = np.argmax(s, axis=1)
    _, matrix = confusion_matrix(pred, y)
    count = matrix.sum(axis=1).astype(np.float64)
    hit = np.diag(matrix).astype(np.float64)
    per_class = np.divide(hit, count, out=np.zeros_like(hit), where=count > 0)
    return float(per_class.mean())


def compute_metrics(scores: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Upstream's evaluation metrics in percent: ``top1``, ``top5`` and ``mean_class_accuracy``."""
    top1, top5 = top_k_accuracy(scores, labels, (1, 5))
    return {
        "top1": 100.0 * top1,
        "top5": 100.0 * top5,
        "mean_class_accuracy": 100.0 * mean_class_accuracy(scores, labels),
    }
