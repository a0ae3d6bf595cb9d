"""Mean average precision (FAIR's Charades metric): worked examples by hand and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from slowonly_zoo.evaluation.metrics import average_precision, mean_average_precision


def test_average_precision_worked_examples() -> None:
    # ranks 1..4 hit, miss, hit, miss: P@1 = 1 (R 1/2), P@3 = 2/3 (R 1): AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.5 + 1 / 3)
    # a tie of a hit and a miss is one threshold: P = 1/2 at R = 1/2, then P = 2/3 at R = 1
    assert average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(0.25 + 1 / 3)
    assert average_precision([0.1, 0.2, 0.3], [0, 0, 1]) == 1.0
    with pytest.raises(ValueError, match="without positives"):
        average_precision([0.1, 0.2], [0, 0])


def _brute_force_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over the positives of the precision among all videos scoring at least as high."""
    precisions = [targets[scores >= scores[i]].mean() for i in np.flatnonzero(targets)]
    return float(np.mean(precisions))


def test_mean_average_precision_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(40, 7)) / 5.0  # coarse scores: many ties
    targets = (rng.random((40, 7)) < 0.3).astype(np.int64)
    targets[:, 3] = 0  # a class without positives is left out
    expected = np.mean([_brute_force_ap(scores[:, k], targets[:, k]) for k in range(7) if k != 3])
    assert mean_average_precision(scores, targets) == pytest.approx(expected, abs=1e-12)
    assert mean_average_precision(targets * 1.0, targets) == 1.0  # perfect scores
