"""``slowonly-zoo train``: a smoke run on the shared clips (subprocess, the real recipe, 1 iteration), and the
user errors: an empty list, a label outside the head, ``--resume`` on a work dir of another model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from slowonly_zoo.cli import main
from slowonly_zoo.training.checkpoints import WorkDir

ENTRY = "slowonly_r50_8x8x1_k400"


def _train(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["train", ENTRY, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_empty_list_is_an_error_naming_file_and_line(tmp_path, capsys):
    ann = tmp_path / "empty.txt"
    ann.write_text("")
    code, _, err = _train(capsys, "--data-root", str(tmp_path), "--ann-file", str(ann), "--work-dir", str(tmp_path))
    assert code == 1
    assert f"error: {ann}, line 1: the annotation list is empty" in err
    assert "Traceback" not in err


def test_label_outside_num_classes_names_file_and_line(tmp_path, capsys):
    ann = tmp_path / "train.txt"
    ann.write_text("a.mp4 0\nb.mp4 1\nc.mp4 7\n")
    args = ["--data-root", str(tmp_path), "--ann-file", str(ann), "--work-dir", str(tmp_path / "w")]
    code, _, err = _train(capsys, *args, "--num-classes", "5")
    assert code == 1
    assert f"{ann}, line 3: label 7 of 'c.mp4' is outside 0..4 (num_classes=5)" in err


def test_resume_refuses_a_work_dir_of_another_model(tmp_path, capsys):
    ann = tmp_path / "train.txt"
    ann.write_text("a.mp4 0\n")
    work = WorkDir(tmp_path / "work")
    work.create()
    work.save_latest({"model_name": "slowonly_r50_4x16x1_k400", "num_classes": 400})
    code, _, err = _train(
        capsys,
        "--data-root",
        str(tmp_path),
        "--ann-file",
        str(ann),
        "--work-dir",
        str(work.path),
        "--init",
        "scratch",
        "--resume",
    )
    assert code == 1
    assert "holds a run of 'slowonly_r50_4x16x1_k400', not 'slowonly_r50_8x8x1_k400'" in err
    # and without a saved state
    code, _, err = _train(
        capsys,
        *("--data-root", str(tmp_path), "--ann-file", str(ann), "--work-dir", str(tmp_path / "new")),
        *("--init", "scratch", "--resume"),
    )
    assert code == 1 and "has no latest.pt" in err


def test_imagenet_init_needs_a_path(tmp_path, capsys):
    ann = tmp_path / "train.txt"
    ann.write_text("a.mp4 0\n")
    code, _, err = _train(
        capsys, "--data-root", str(tmp_path), "--ann-file", str(ann), "--work-dir", str(tmp_path), "--init", "imagenet"
    )
    assert code == 1 and "--init imagenet:PATH" in err


@pytest.mark.slow
def test_smoke_train_on_shared_clips(shared_videos, tmp_path):
    """The real 8x8x1 recipe (256 short side, 224 crops, 8x8 sampling) on two shared clips plus a missing one:
    one iteration, validation, checkpoints, and the missing video reported, not fatal."""
    ann = tmp_path / "train.txt"
    ann.write_text("archery.avi 5\narm_wrestling.mp4 6\nno_such_video.mp4 7\n")
    work = tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "slowonly_zoo", "train", ENTRY, "--data-root", str(shared_videos)]
    cmd += ["--ann-file", str(ann), "--val-ann-file", str(ann), "--work-dir", str(work), "--init", "scratch"]
    cmd += ["--batch-size", "3", "--max-iters", "1", "--num-workers", "1", "--seed", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # the lr and how it was derived: 0.1 x 3 / (8 x 8)
    assert "lr 0.0046875 = 0.1 x 3 / (8 x 8)" in out
    assert "1 unreadable training sample(s) replaced" in out and "no_such_video.mp4" in out
    assert "validation: 1 unreadable video(s) left out" in out
    assert "done: 1 complete epochs, 1 iterations" in out  # 3 videos, batch 3: one iteration per epoch
    assert "skipped unreadable training video" in proc.stderr  # logged when it happened, too
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert [r["mode"] for r in records] == ["train", "val"]
    assert records[0]["lr"] == pytest.approx(0.0046875) and records[0]["loss"] > 0
    names = {p.name for p in work.iterdir()}
    assert {"epoch_1.safetensors", "epoch_1.pth", "best.safetensors", "latest.pt", "recipe.json"} <= names
    state = torch.load(work / "latest.pt", weights_only=True)
    assert state["model_name"] == ENTRY and state["iter"] == 1 and state["epoch"] == 1
