"""Score fusion (GYM99 1:1) and the verify report: verdict rule, results.json content, printed table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slowonly_zoo.evaluation import EvalResult, ScoreMismatchError, ScoreTable, exit_status, fuse_files, fuse_tables
from slowonly_zoo.evaluation.metrics import compute_metrics
from slowonly_zoo.evaluation.report import build_report, format_summary, judge, write_report
from slowonly_zoo.evaluation.scores import write_scores
from slowonly_zoo.index import get_model_info


def _table(ids: list[str], seed: int, k: int = 6, failed: dict[str, str] | None = None) -> ScoreTable:
    rng = np.random.default_rng(seed)
    p = rng.random((len(ids), k)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([int(s[1:]) % k for s in ids])
    failed = failed or {}
    failed_ids = np.array(list(failed), dtype=str)
    return ScoreTable(np.array(ids), labels, p, failed_ids, np.array(list(failed.values()), dtype=str))


def test_fusion_is_the_aligned_mean(tmp_path: Path) -> None:
    a = _table(["v0", "v1", "v2", "v3"], seed=1)
    b_order = [2, 0, 3, 1]
    b_full = _table(["v0", "v1", "v2", "v3"], seed=2)
    b = ScoreTable(b_full.ids[b_order], b_full.labels[b_order], b_full.scores[b_order])
    fused = fuse_tables([a, b])
    assert fused.ids.tolist() == ["v0", "v1", "v2", "v3"]
    np.testing.assert_array_equal(fused.scores, (a.scores + b_full.scores) / np.float32(2))
    # the same ranking as upstream's report_accuracy.py (weighted sum with coefficients 1, 1)
    assert compute_metrics(fused.scores, fused.labels) == compute_metrics(a.scores + b_full.scores, a.labels)
    # from files, written to a folder
    write_scores(tmp_path / "rgb" / "scores.npz", a)
    write_scores(tmp_path / "flow" / "scores.npz", b)
    from_files = fuse_files([tmp_path / "rgb", tmp_path / "flow" / "scores.npz"], tmp_path / "fused")
    np.testing.assert_array_equal(from_files.scores, fused.scores)
    assert (tmp_path / "fused" / "scores.npz").exists()


def test_fusion_mismatches_are_clear_errors() -> None:
    a = _table(["v0", "v1", "v2"], seed=1)
    with pytest.raises(ScoreMismatchError, match=r"1 videos scored in rgb are missing from flow: 'v2'"):
        fuse_tables([a, _table(["v0", "v1"], seed=2)], names=["rgb", "flow"])
    with pytest.raises(ScoreMismatchError, match="different numbers of classes"):
        fuse_tables([a, _table(["v0", "v1", "v2"], seed=2, k=5)])
    wrong = _table(["v0", "v1", "v2"], seed=2)
    wrong.labels[1] += 1
    with pytest.raises(ScoreMismatchError, match=r"other labels .* 'v1'"):
        fuse_tables([a, wrong])
    with pytest.raises(ValueError, match="at least two"):
        fuse_tables([a])


def test_partial_fusion_records_the_videos_left_out() -> None:
    a = _table(["v0", "v1", "v2"], seed=1, failed={"v3": "missing frame img_00007.jpg"})
    b = _table(["v0", "v2", "v3"], seed=2, failed={"v1": "missing frame x_00002.jpg"})
    fused = fuse_tables([a, b], names=["rgb", "flow"], allow_partial=True)
    assert fused.ids.tolist() == ["v0", "v2"]
    assert dict(fused.failed) == {"v3": "rgb: missing frame img_00007.jpg", "v1": "flow: missing frame x_00002.jpg"}


@pytest.mark.parametrize(
    ("measured", "complete", "verdict"),
    [
        ({"top1": 73.2, "top5": 90.5, "mean_class_accuracy": 60.0}, True, "passed"),
        ({"top1": 73.6, "top5": 90.5, "mean_class_accuracy": 60.0}, True, "failed"),
        ({"top1": 73.2, "top5": 89.9, "mean_class_accuracy": 60.0}, True, "failed"),
        ({"top1": 10.0, "top5": 20.0, "mean_class_accuracy": 5.0}, False, "not judged"),
        (None, True, "failed"),
    ],
)
def test_verdict_rule(measured, complete, verdict) -> None:
    reported = {"top1": 73.02, "top5": 90.77, "mean_class_accuracy": None}
    assert judge(measured, reported, complete=complete)[0] == verdict


def test_report_json_and_summary(tmp_path: Path) -> None:
    entry = get_model_info("slowonly_r50_4x16x1_gym99")  # reports top-1 79.3 and mean class 70.2, no top-5
    table = _table([f"v{i}" for i in range(6)], seed=3, failed={"v9": "EOFError: truncated"})
    metrics = compute_metrics(table.scores, table.labels)
    result = EvalResult(
        out_dir=tmp_path,
        scores_path=tmp_path / "scores.npz",
        table=table,
        metrics=metrics,
        num_listed=7,
        num_selected=7,
        seconds=2.0,
        videos_per_second=3.0,
        settings={
            "checkpoint": "/x.pth",
            "checkpoint_sha256": "ab" * 32,
            "protocol": {"num_clips": 10},
            "ann_file": "a.txt",
        },
    )
    report = build_report(result, entry)
    assert report["verdict"] == "failed"  # random scores are nowhere near 79.3
    assert report["reported"] == {"top1": 79.3, "top5": None, "mean_class_accuracy": 70.2}
    assert report["delta"]["top1"] == pytest.approx(metrics["top1"] - 79.3)
    assert report["delta"]["top5"] is None
    assert report["videos"]["failed_videos"] == [{"id": "v9", "reason": "EOFError: truncated"}]
    assert report["checkpoint"]["sha256"] == "ab" * 32
    assert "torch" in report["environment"]["packages"]
    path = write_report(report, tmp_path)
    assert json.loads(path.read_text())["measured"] == metrics
    text = format_summary(report)
    assert "top-1 accuracy" in text and "79.30" in text and f"{metrics['top1']:.2f}" in text
    assert "mean class accuracy" in text and "70.20" in text
    assert "7 listed, 6 evaluated, 1 failed" in text and "v9: EOFError: truncated" in text
    assert "verdict: FAILED" in text
    result.report = report
    assert exit_status(result) == 1
    result.num_selected = 3  # as with --limit 3
    assert build_report(result, entry)["verdict"] == "not judged"
    assert exit_status(build_report(result, entry)) == 0
