"""Late fusion of per-video scores: the GYM99 RGB + flow "1:1 fusion" entry.

Upstream fuses with ``tools/analysis/report_accuracy.py``: the weighted sum of the models' averaged class
probabilities with coefficients 1 and 1. This module takes the 1:1 *mean* instead: halving is exact in floating
point, so every ranking (and so every metric) is identical to upstream's sum, while the result stays a probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ScoreMismatchError
from .scores import ScoreTable, read_scores, write_scores

__all__ = ["ScoreMismatchError", "fuse_files", "fuse_tables"]


def _preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def fuse_tables(
    tables: Sequence[ScoreTable],
    *,
    names: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    allow_partial: bool = False,
) -> ScoreTable:
    """The weighted mean (default 1:1) of several models' per-video probabilities, aligned by video id, in the first
    table's order.

    Args:
        tables: two or more score tables (e.g. from ``scores.npz``) over the same annotation list.
        names: a name per table for messages (default ``"scores #1"``, ...).
        weights: a weight per table (default all 1: the plain mean); the result is sum(w * p) / sum(w).
        allow_partial: fuse only the videos every table evaluated, recording the others as failed with the reason;
            by default any difference in the video sets is a :class:`ScoreMismatchError`.

    Raises:
        ScoreMismatchError: different class counts, duplicate ids, labels that disagree for one video, or (unless
            ``allow_partial``) different video sets.
    """
    if len(tables) < 2:
        raise ValueError(f"fusion needs at least two score tables, got {len(tables)}")
    names = list(names) if names is not None else [f"scores #{k + 1}" for k in range(len(tables))]
    w = [1.0] * len(tables) if weights is None else [float(x) for x in weights]
    if len(w) != len(tables) or any(x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"weights must be one non-negative number per table with a positive sum; got {list(w)}")
    widths = {t.scores.shape[1] for t in tables}
    if len(widths) != 1:
        raise ScoreMismatchError(
            "the score files have different numbers of classes: "
            + ", ".join(f"{n}: {t.scores.shape[1]}" for n, t in zip(names, tables))
            + "; they come from models of different datasets"
        )
    positions: list[dict[str, int]] = []
    for name, t in zip(names, tables):
        pos = {sid: k for k, sid in enumerate(t.ids.tolist())}
        if len(pos) != len(t.ids):
            dup = [s for s in pos if (t.ids == s).sum() > 1]
            raise ScoreMismatchError(f"{name} lists some videos more than once: {_preview(dup)}")
        positions.append(pos)

    base = tables[0].ids.tolist()
    common = [sid for sid in base if all(sid in p for p in positions[1:])]
    common_set = set(common)
    dropped: dict[str, str] = {}
    for name, t in zip(names, tables):
        extra = [sid for sid in t.ids.tolist() if sid not in common_set]
        if extra and not allow_partial:
            others = [n for n in names if n != name]
            raise ScoreMismatchError(
                f"{len(extra)} videos scored in {name} are missing from {', '.join(others)}: {_preview(extra)}. "
                "Fuse score files of the same annotation list (rerun the member that failed on them), or allow a "
                "partial fusion."
            )
        for sid in extra:
            missing_from = [n for n, p in zip(names, positions) if sid not in p]
            dropped.setdefault(sid, f"not evaluated by {', '.join(missing_from)}")

    idx = [np.array([pos[sid] for sid in common], dtype=np.int64) for pos in positions]
    labels = tables[0].labels[idx[0]]
    for name, t, ix in zip(names[1:], tables[1:], idx[1:]):
        bad = np.nonzero(t.labels[ix] != labels)[0]
        if bad.size:
            raise ScoreMismatchError(
                f"{name} gives other labels than {names[0]} for {bad.size} videos "
                f"(first: {common[bad[0]]!r}: {int(t.labels[ix][bad[0]])} vs {int(labels[bad[0]])}); "
                "the score files come from different annotation lists"
            )
    total = np.zeros((len(common), tables[0].scores.shape[1]), dtype=np.float32)
    for t, ix, wk in zip(tables, idx, w):
        total += np.float32(wk) * t.scores[ix].astype(np.float32)
    fused = (total / np.float32(sum(w))).astype(np.float32)

    failed: dict[str, str] = {}
    for name, t in zip(names, tables):
        for sid, reason in t.failed:
            failed.setdefault(sid, f"{name}: {reason}")
    for sid, reason in dropped.items():
        failed.setdefault(sid, reason)
    finite = np.isfinite(fused).all(axis=1)  # a NaN / inf score fails its video, it is never scored as a miss
    for k in np.flatnonzero(~finite):
        culprits = [n for n, t, ix in zip(names, tables, idx) if not np.isfinite(t.scores[ix[k]]).all()]
        failed.setdefault(common[k], f"the scores in {', '.join(culprits)} are not finite (NaN or infinite)")
    keep = np.flatnonzero(finite)
    return ScoreTable(
        ids=np.array([common[k] for k in keep], dtype=str),
        labels=labels[keep].astype(np.int64),
        scores=fused[keep],
        failed_ids=np.array(list(failed), dtype=str),
        failed_reasons=np.array(list(failed.values()), dtype=str),
    )


def fuse_files(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    weights: Sequence[float] | None = None,
    allow_partial: bool = False,
) -> ScoreTable:
    """Fuse ``scores.npz`` files (or output folders holding one), 1:1 unless ``weights`` say otherwise; write the
    result to ``out`` (a ``.npz`` path or a folder) if given. This is ``slowonly-zoo fuse``."""
    tables = [read_scores(p) for p in paths]
    fused = fuse_tables(tables, names=[str(p) for p in paths], weights=weights, allow_partial=allow_partial)
    if out is not None:
        out = Path(out)
        write_scores(out / "scores.npz" if out.suffix != ".npz" else out, fused)
    return fused
