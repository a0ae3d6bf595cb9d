"""The per-video record store: exact round trip, torn lines, precedence, scores.npz, run identity."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from slowonly_zoo.evaluation.scores import (
    RunMismatchError,
    ScoreStore,
    ScoreTable,
    VideoRecord,
    check_run_info,
    read_records,
    read_scores,
    write_scores,
)


def _ok(i: int, k: int = 5, seed: int = 0) -> VideoRecord:
    p = np.random.default_rng(seed + i).random(k).astype(np.float32)
    return VideoRecord(i, f"dir/v{i}.mp4", i % k, "ok", scores=p / p.sum(), views=30)


def test_records_round_trip_bit_exactly(tmp_path: Path) -> None:
    recs = [_ok(i) for i in range(4)] + [VideoRecord(4, "dir/ümlaut name.mp4", 2, "failed", error="missing file")]
    with ScoreStore(tmp_path) as store:
        for r in recs:
            store.append(r)
    back = read_records(tmp_path)
    assert sorted(back) == [0, 1, 2, 3, 4]
    for r in recs:
        assert back[r.index] == r
        if r.ok:
            assert back[r.index].scores.dtype == np.float32
            assert np.array_equal(back[r.index].scores, r.scores)
    assert back[4].scores is None and back[4].error == "missing file"


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    with ScoreStore(tmp_path) as store:
        store.append(_ok(0))
        store.append(_ok(1))
    path = tmp_path / "records-rank0.jsonl"
    whole = path.read_bytes()
    line = _ok(2).to_json().encode()
    path.write_bytes(whole + line[: len(line) // 2])  # killed in the middle of a write
    assert sorted(read_records(tmp_path)) == [0, 1]
    with ScoreStore(tmp_path) as store:  # reopening cuts the torn tail off
        assert path.read_bytes() == whole
        store.append(_ok(2))
    assert sorted(read_records(tmp_path)) == [0, 1, 2]


def test_unreadable_middle_line_warns_and_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "records-rank0.jsonl"
    path.write_text(_ok(0).to_json() + "\n{not json\n" + _ok(1).to_json() + "\n")
    with caplog.at_level(logging.WARNING, logger="slowonly_zoo"):
        assert sorted(read_records(tmp_path)) == [0, 1]
    assert "records-rank0.jsonl:2: ignoring an unreadable result record" in caplog.text


def test_success_beats_failure_across_rank_files(tmp_path: Path) -> None:
    with ScoreStore(tmp_path, rank=0) as s0, ScoreStore(tmp_path, rank=1) as s1:
        s1.append(_ok(7))
        s0.append(VideoRecord(7, "dir/v7.mp4", 2, "failed", error="timeout"))
        s0.append(VideoRecord(8, "dir/v8.mp4", 3, "failed", error="first"))
        s0.append(VideoRecord(8, "dir/v8.mp4", 3, "failed", error="second"))
    merged = read_records(tmp_path)
    assert merged[7].ok
    assert merged[8].error == "second"


def test_scores_npz_in_annotation_order(tmp_path: Path) -> None:
    recs = [_ok(3), VideoRecord(1, "dir/v1.mp4", 1, "failed", error="empty file"), _ok(0), _ok(2)]
    table = ScoreTable.from_records(recs)
    path = write_scores(tmp_path / "scores.npz", table)
    back = read_scores(tmp_path)  # a folder works too
    assert back.ids.tolist() == ["dir/v0.mp4", "dir/v2.mp4", "dir/v3.mp4"]
    assert back.labels.tolist() == [0, 2, 3]
    assert np.array_equal(back.scores, np.stack([_ok(0).scores, _ok(2).scores, _ok(3).scores]))
    assert back.failed == [("dir/v1.mp4", "empty file")]
    with np.load(path, allow_pickle=False) as z:  # plain arrays, no pickles
        assert set(z.files) == {"ids", "labels", "scores", "failed_ids", "failed_reasons"}
        assert z["scores"].dtype == np.float32


def test_read_scores_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="slowonly-zoo verify"):
        read_scores(tmp_path / "nothing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        read_scores(tmp_path / "other.npz")


def test_run_info_must_match_to_resume(tmp_path: Path) -> None:
    check_run_info(tmp_path, {"model": "m", "checkpoint_sha256": "ab", "protocol": {"num_clips": 10}})
    check_run_info(tmp_path, {"protocol": {"num_clips": 10}, "checkpoint_sha256": "ab", "model": "m"})  # same
    with pytest.raises(RunMismatchError, match=r"differs in: checkpoint_sha256, protocol.*another --out"):
        check_run_info(tmp_path, {"model": "m", "checkpoint_sha256": "cd", "protocol": {"num_clips": 1}})
