"""The evaluation loop on tiny stand-ins: clip averaging, batching, bad inputs, kill-and-resume, torchrun on gloo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_support import NUM_CLASSES, VIEWS, ListDataset, TinyVideoNet, reference_probs

from slowonly_zoo.evaluation import BadInputError, RunMismatchError, evaluate, read_scores
from slowonly_zoo.evaluation.metrics import compute_metrics

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _run(dataset, out: Path, **kw):
    kw.setdefault("num_workers", 0)
    kw.setdefault("batch_views", 2 * VIEWS)
    kw.setdefault("views_per_video", VIEWS)
    kw.setdefault("progress", False)
    return evaluate(TinyVideoNet(), dataset, out_dir=out, **kw)


@pytest.fixture
def one_thread():
    """Compare with subprocesses that run on one thread (torchrun's default), restoring the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("batch_views", [1, VIEWS, 2 * VIEWS + 1, 100])
def test_average_clips_prob_and_view_batching(tmp_path: Path, batch_views: int) -> None:
    """Per view softmax then mean over the video's views, however the views are packed into forward passes."""
    result = _run(ListDataset(7), tmp_path, batch_views=batch_views)
    expected = reference_probs(TinyVideoNet(), list(range(7)))
    assert result.table.ids.tolist() == [f"vid{i}.mp4" for i in range(7)]
    assert result.table.labels.tolist() == [i % NUM_CLASSES for i in range(7)]
    assert result.table.scores.dtype == np.float32 and result.table.scores.shape == (7, NUM_CLASSES)
    np.testing.assert_allclose(result.table.scores, expected, rtol=0, atol=2e-7)
    np.testing.assert_allclose(result.table.scores.sum(axis=1), 1.0, atol=1e-6)
    assert result.metrics == compute_metrics(result.table.scores, result.table.labels)
    assert result.num_evaluated == 7 and result.num_failed == 0


def test_workers_give_identical_scores(tmp_path: Path) -> None:
    a = _run(ListDataset(9), tmp_path / "a", num_workers=0)
    b = _run(ListDataset(9), tmp_path / "b", num_workers=2)
    assert np.array_equal(a.table.scores, b.table.scores)


def test_bad_inputs_are_recorded_with_reasons(tmp_path: Path) -> None:
    bad = {1: "missing file: vid1.mp4", 4: "raise", 6: "decoding failed: truncated stream"}
    result = _run(ListDataset(8, bad=bad), tmp_path)
    assert result.num_evaluated == 5 and result.num_failed == 3
    assert result.table.ids.tolist() == ["vid0.mp4", "vid2.mp4", "vid3.mp4", "vid5.mp4", "vid7.mp4"]
    failed = dict(result.failed)
    assert failed["vid1.mp4"] == "missing file: vid1.mp4"
    assert failed["vid6.mp4"] == "decoding failed: truncated stream"
    # an exception inside the dataset is caught and recorded, with the annotation line it came from
    assert failed["<annotation line 5>"] == "OSError: cannot open vid4.mp4"
    expected = reference_probs(TinyVideoNet(), [0, 2, 3, 5, 7])
    np.testing.assert_allclose(result.table.scores, expected, rtol=0, atol=2e-7)
    on_disk = read_scores(tmp_path / "scores.npz")
    assert on_disk.failed == result.failed


def test_strict_raises_on_the_first_bad_video(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"vid2\.mp4.*line 3.*corrupt header.*without --strict"):
        _run(ListDataset(6, bad={2: "corrupt header", 4: "missing"}), tmp_path, strict=True)


def test_limit_then_resume_recomputes_a_partial_group_exactly(tmp_path: Path) -> None:
    full = _run(ListDataset(9), tmp_path / "full")
    # groups of 2 videos; --limit 5 ends inside the group {4, 5}
    part = _run(ListDataset(9), tmp_path / "resumed", limit=5)
    assert part.num_selected == 5 and part.num_evaluated == 5
    rest = _run(ListDataset(9), tmp_path / "resumed")
    assert rest.num_resumed == 5
    assert np.array_equal(rest.table.scores, full.table.scores)
    assert rest.table.ids.tolist() == full.table.ids.tolist()


def test_resume_refuses_results_of_another_evaluation(tmp_path: Path) -> None:
    _run(ListDataset(3), tmp_path, run_info={"model": "a"}, limit=1)
    with pytest.raises(RunMismatchError, match="differs in: model"):
        _run(ListDataset(3), tmp_path, run_info={"model": "b"})


def test_retry_failed(tmp_path: Path) -> None:
    first = _run(ListDataset(4, bad={2: "missing"}), tmp_path)
    assert first.num_failed == 1
    again = _run(ListDataset(4), tmp_path)  # the file is back, but finished (failed) videos are skipped
    assert again.num_failed == 1
    fixed = _run(ListDataset(4), tmp_path, retry_failed=True)
    assert fixed.num_failed == 0 and fixed.num_evaluated == 4


_AFTER_OPENCV_SCRIPT = textwrap.dedent(
    """
    import sys, cv2, numpy as np
    cv2.setNumThreads(2)
    for _ in range(5):  # OpenCV's worker threads now exist in this process, and DataLoader workers fork from it
        cv2.resize(np.zeros((1500, 1500, 3), np.uint8), (700, 500))
    from slowonly_zoo.evaluation import evaluate
    from eval_support import ListDataset, TinyVideoNet, VIEWS
    r = evaluate(TinyVideoNet(), ListDataset(4), out_dir=sys.argv[1], num_workers=1, batch_views=2 * VIEWS,
                 views_per_video=VIEWS, progress=False)
    print("evaluated", r.num_evaluated)
    """
)


def test_workers_start_after_the_parent_used_opencv_threads(tmp_path: Path) -> None:
    """A worker forked from a process whose OpenCV thread pool ran must not deadlock (it did, via cv2.setNumThreads
    in the worker initialiser, when mmaction2's pipeline had run first in the same process)."""
    out = subprocess.run(
        [sys.executable, "-c", _AFTER_OPENCV_SCRIPT, str(tmp_path / "run")],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "evaluated 4"


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from slowonly_zoo.evaluation import evaluate
    from eval_support import ListDataset, TinyVideoNet, VIEWS
    evaluate(TinyVideoNet(), ListDataset(16, bad={3: "missing"}, delay=0.15), out_dir=sys.argv[1], num_workers=0,
             batch_views=2 * VIEWS, views_per_video=VIEWS, progress=False)
    """
)


def test_resume_after_sigkill_gives_identical_numbers(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out)], env=_subprocess_env())
    records = out / "records-rank0.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if records.exists() and records.read_bytes().count(b"\n") >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the evaluation finished (or died) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = records.read_bytes().count(b"\n")
    assert 5 <= written < 16
    with open(records, "ab") as fh:  # what a kill in the middle of a write leaves behind: a torn line
        fh.write(b'{"index": 12, "id": "vid12.mp4", "label": 5, "status": "ok", "scores_f32_b64": "AAAA')

    resumed = _run(ListDataset(16, bad={3: "missing"}), out)
    uninterrupted = _run(ListDataset(16, bad={3: "missing"}), tmp_path / "straight")
    assert resumed.num_resumed == written
    assert resumed.table.ids.tolist() == uninterrupted.table.ids.tolist()
    assert np.array_equal(resumed.table.scores, uninterrupted.table.scores)
    assert resumed.metrics == uninterrupted.metrics
    assert resumed.failed == uninterrupted.failed == [("vid3.mp4", "missing")]
    # the torn tail was cut off and every video is recorded exactly once
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert sorted(r["index"] for r in lines) == list(range(16))


_DIST_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from slowonly_zoo.evaluation import evaluate
    from eval_support import ListDataset, TinyVideoNet, VIEWS
    r = evaluate(TinyVideoNet(), ListDataset(11, bad={4: "corrupt"}), out_dir=sys.argv[1], num_workers=0,
                 batch_views=2 * VIEWS, views_per_video=VIEWS, progress=False, device="cpu")
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[1], f"summary{rank}.json"), "w") as fh:
        json.dump({"world_size": r.world_size, "metrics": r.metrics, "evaluated": r.num_evaluated,
                   "failed": r.failed}, fh)
    """
)


def test_torchrun_two_gloo_processes_match_a_single_process(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "dist"
    script = tmp_path / "dist_eval.py"
    script.write_text(_DIST_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(out)]
    env = _subprocess_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    single = _run(ListDataset(11, bad={4: "corrupt"}), tmp_path / "single")
    merged = read_scores(out / "scores.npz")
    assert merged.ids.tolist() == single.table.ids.tolist()
    assert np.array_equal(merged.scores, single.table.scores)
    assert merged.failed == single.failed == [("vid4.mp4", "corrupt")]
    # each rank wrote its own records; together every video exactly once
    per_rank = [
        [json.loads(x)["index"] for x in (out / f"records-rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)
    ]
    assert per_rank[0] and per_rank[1] and not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(11))
    for rank in (0, 1):
        summary = json.loads((out / f"summary{rank}.json").read_text())
        assert summary["world_size"] == 2 and summary["evaluated"] == 10
        assert summary["metrics"] == single.metrics
