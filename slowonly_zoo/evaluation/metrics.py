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

__all__ = [
    "average_precision",
    "compute_metrics",
    "confusion_matrix",
    "mean_average_precision",
    "mean_class_accuracy",
    "top_k_accuracy",
]


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
    if (y < 0).any() or (y >= s.shape[1]).any():
        bad = int(np.flatnonzero((y < 0) | (y >= s.shape[1]))[0])
        raise ValueError(
            f"labels must be class indices 0..{s.shape[1] - 1}; row {bad} has label {int(y[bad])}, which no score "
            "can hit"
        )
    finite = np.isfinite(s).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise ValueError(
            f"{rows.size} rows of scores are not finite (first: row {int(rows[0])}); leave those videos out as failed"
        )
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
    but never the true label has no videos and contributes 0 to the mean (upstream's quirk: mmaction2 0.x
    ``mmaction/core/evaluation/accuracy.py`` ``mean_class_accuracy``),
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


# --------------------------------------------------------------------------------------------------
# multi-label: mean average precision (Charades; FAIR's protocol)
# --------------------------------------------------------------------------------------------------


def average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """Average precision of one class: ``sum_k (R_k - R_{k-1}) * P_k`` over the distinct score thresholds taken
    from the highest down (equal scores form one threshold), with ``P_k`` / ``R_k`` the precision / recall of
    the videos scoring at least the k-th threshold. The step-wise (not interpolated) definition PySlowFast's
    ``slowfast/utils/meters.py`` ``get_map`` uses through ``sklearn.metrics.average_precision_score``.

    ``targets`` are 0/1 per video; a class without positives has no AP (ValueError).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(targets).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and targets must have the same length, got {s.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("targets must be 0 or 1 (multi-label ground truth)")
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("average precision is undefined for a class without positives")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order].astype(np.float64)
    true_pos = np.cumsum(y)
    # the last index of each run of equal scores: one threshold per distinct score
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    precision = true_pos[ends] / (ends + 1)
    recall = true_pos[ends] / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """Mean over classes of :func:`average_precision`; classes without any positive video are left out, as
    PySlowFast's ``get_map`` leaves them out. ``scores`` and ``targets`` are (videos, classes), targets 0/1."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"scores and targets must be 2-D arrays of one shape, got {s.shape} and {y.shape}")
    present = np.flatnonzero(y.sum(axis=0) > 0)
    if present.size == 0:
        raise ValueError("no class has a positive video: mean average precision is undefined")
    return float(np.mean([average_precision(s[:, k], y[:, k]) for k in present]))
