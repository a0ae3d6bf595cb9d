"""Metrics: hand-computed cases (ties included) and a cross-check against mmaction2's own implementation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from slowonly_zoo.evaluation.metrics import compute_metrics, confusion_matrix, mean_class_accuracy, top_k_accuracy

# Four videos, four classes. Worked by hand below.
SCORES = np.array(
    [
        [0.1, 0.6, 0.2, 0.1],  # label 1: top-1 hit (class 1 is the maximum)
        [0.5, 0.3, 0.1, 0.1],  # label 1: top-1 miss (predicts 0), top-2 hit
        [0.2, 0.2, 0.5, 0.1],  # label 3: lowest score, only in top-4
        [0.25, 0.25, 0.25, 0.25],  # label 3: all tied; the sort ranks the highest index (3) first, argmax picks 0
    ]
)
LABELS = np.array([1, 1, 3, 3])


def test_top_k_hand_computed_with_ties() -> None:
    # top-1: rows 0 and 3 hit (row 3 through the tie rule) -> 2/4
    # top-2: row 0 {2,1} hit, row 1 {1,0} hit, row 2 {1,2} miss, row 3 {2,3} hit -> 3/4
    # top-3: row 2 {0,1,2} still misses -> 3/4; top-4 and k > K: everything -> 1
    assert top_k_accuracy(SCORES, LABELS, (1, 2, 3, 4, 5)) == [0.5, 0.75, 0.75, 1.0, 1.0]
    assert top_k_accuracy(SCORES, LABELS, 1) == [0.5]


def test_top_k_tie_at_the_boundary_prefers_higher_index() -> None:
    # classes 1 and 2 tie for second place; with k=2 the higher index (2) takes the slot
    scores = np.array([[0.5, 0.2, 0.2, 0.1]] * 2)
    assert top_k_accuracy(scores, np.array([2, 1]), (2,)) == [0.5]


def test_mean_class_accuracy_hand_computed_union_quirk() -> None:
    # argmax predictions: [1, 0, 2, 0] (row 3: first of the tied maxima). Classes in the union of predictions and
    # labels: {0, 1, 2, 3}. Class 0: predicted, never true -> 0. Class 1: 2 videos, 1 right -> 0.5.
    # Class 2: predicted, never true -> 0. Class 3: 2 videos, 0 right -> 0. Mean = 0.5 / 4 = 0.125
    # (averaging over true classes only would give 0.25).
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(0.125, abs=0, rel=1e-15)


def test_mean_class_accuracy_ignores_classes_neither_true_nor_predicted() -> None:
    # 10 classes, but only 1 and 3 occur (as labels or predictions): the mean is over those two.
    scores = np.zeros((3, 10))
    scores[0, 1] = scores[1, 3] = scores[2, 1] = 1.0
    labels = np.array([1, 3, 3])
    # class 1: 1 video, right -> 1; class 3: 2 videos, 1 right -> 0.5; mean 0.75
    assert mean_class_accuracy(scores, labels) == pytest.approx(0.75)
    classes, matrix = confusion_matrix(np.argmax(scores, 1), labels)
    assert classes.tolist() == [1, 3]
    assert matrix.tolist() == [[1, 0], [1, 1]]


def test_compute_metrics_percent() -> None:
    m = compute_metrics(SCORES, LABELS)
    assert m == {"top1": 50.0, "top5": 100.0, "mean_class_accuracy": 12.5}


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros(4), np.zeros(4, int), "2-D"),
        (np.zeros((3, 4)), np.zeros(2, int), "one label per row"),
        (np.zeros((0, 4)), np.zeros(0, int), "empty"),
        (np.zeros((2, 4)), np.zeros(2), "integers"),
    ],
)
def test_bad_inputs_are_clear_errors(scores: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        top_k_accuracy(scores, labels)


def _upstream_accuracy_module():
    """mmaction2's ``accuracy.py`` (identical in 0.x and 1.x for these two functions), loaded on its own."""
    spec = importlib.util.find_spec("mmaction")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "mmaction2 (the test-only reference) is not installed: "
            "pip install --no-deps -r tests/reference-requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "evaluation" / "functional" / "accuracy.py"
    mod_spec = importlib.util.spec_from_file_location("_mmaction_accuracy", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def test_matches_mmaction2_on_random_scores() -> None:
    upstream = _upstream_accuracy_module()
    rng = np.random.default_rng(0)
    for num_classes, n, label_classes in [(400, 300, 99), (27, 200, 27), (10, 50, 4)]:
        scores = rng.random((n, num_classes)).astype(np.float32)  # continuous: no ties
        labels = rng.integers(0, label_classes, n)
        theirs_topk = [float(v) for v in upstream.top_k_accuracy(scores, labels, (1, 5))]
        assert top_k_accuracy(scores, labels, (1, 5)) == theirs_topk
        ours = mean_class_accuracy(scores, labels)
        theirs = upstream.mean_class_accuracy(scores, labels)
        assert ours == pytest.approx(float(theirs), rel=1e-12, abs=0)
