"""The scripts in examples/ run as a user runs them (subprocess), on tiny inputs, with upstream-format checkpoints
written by the tests; their outputs are checked."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support import scratch_dir
from upstream_checkpoints import write_upstream_checkpoint

from slowonly_zoo import create_model
from slowonly_zoo.weights.checkpoint import read_weights_file

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MODEL = "slowonly_r50_4x16x1_k400_video"


def run_example(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Iterator[Path]:
    with scratch_dir(tmp_path_factory, "example_ckpts") as d:
        yield write_upstream_checkpoint(d, MODEL, seed=21)


def moving_bars(path: Path, direction: int, seed: int, frames: int = 16, size: tuple[int, int] = (48, 64)) -> Path:
    """An MPEG-4 clip of vertical bars moving left (-1) or right (+1): the two classes of the fine-tuning test."""
    rng = np.random.default_rng(seed)
    h, w = size
    phase, period = rng.integers(0, 16), int(rng.integers(10, 16))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            x = (np.arange(w) + phase - direction * 3 * t) % period < period // 2
            img = np.repeat(np.where(x, 230, 20).astype(np.uint8)[None, :, None], h, 0).repeat(3, 2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_help(script, capsys, monkeypatch):
    """Each example is a script with an argparse --help (run in process: the subprocess runs are below)."""
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--" in out and "python examples/" + script in out


def test_classify_video(ckpt, shared_videos):
    proc = run_example(
        "classify_video.py",
        MODEL,
        str(shared_videos / "archery.avi"),
        "--checkpoint",
        str(ckpt),
        "--clips",
        "1",
        "--topk",
        "3",
        "--json",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert len(item["topk"]) == 3 and item["num_views"] == 1
    probs = [c["prob"] for c in item["topk"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1


def test_extract_features_folder(ckpt, shared_videos, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("cleaning_pool_32f.mp4", "archery.avi"):
        (folder / name).symlink_to(shared_videos / name)
    out = tmp_path / "features"
    proc = run_example(
        "extract_features.py",
        MODEL,
        str(folder),
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--clips",
        "1",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 written, 0 already there, 0 failed" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert len(rows) == 2 and float(rows[0][1]) == pytest.approx(1.0, abs=1e-2)  # cosine of a video with itself
    assert -1.0 <= float(rows[0][2]) <= 1.0
    assert load_file(str(out / "archery.safetensors"))["features"].shape == (2048,)


@pytest.mark.slow
def test_finetune_folder_tiny(ckpt, tmp_path):
    """A few epochs of full fine-tuning (backbone included) on CPU, 2 classes x 2 tiny videos, 2x32x32 clips."""
    data = tmp_path / "data"
    for label, direction in (("moving_left", -1), ("moving_right", 1)):
        (data / label).mkdir(parents=True)
        for k in range(2):
            moving_bars(data / label / f"{label}_{k}.mp4", direction, seed=20 + 10 * direction + k)
    out = tmp_path / "finetuned"
    proc = run_example(
        "finetune_folder.py",
        MODEL,
        str(data),
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--size",
        "32",
        "--crop",
        "32",
        "--clip-len",
        "2",
        "--frame-interval",
        "2",
        "--device",
        "cpu",
        "--val-root",
        str(data),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    epochs = re.findall(r"epoch (\d+): train loss ([\d.]+) acc ([\d.]+), val top-1 ([\d.]+)", proc.stdout)
    assert [int(e[0]) for e in epochs] == [1, 2, 3]
    assert all(np.isfinite(float(v)) for e in epochs for v in e[1:])
    assert "reloaded model gives identical logits: True" in proc.stdout
    final = out / "epoch_3.safetensors"  # the trainer's checkpoint: weights, head size and class names
    assert f"{final}: 2 classes ['moving_left', 'moving_right']" in proc.stdout
    assert read_weights_file(final).class_names == ("moving_left", "moving_right")
    state = load_file(str(final))
    assert state["head.fc.weight"].shape == (2, 2048)
    # the fine-tuned backbone moved away from the checkpoint it started from
    start = create_model(MODEL, checkpoint_path=ckpt).state_dict()
    assert not torch.equal(state["backbone.layer4.2.conv3.conv.weight"], start["backbone.layer4.2.conv3.conv.weight"])
    assert torch.equal(state["backbone.stem.bn.running_mean"], start["backbone.stem.bn.running_mean"])  # frozen BN


@pytest.mark.slow
def test_export_torchscript(ckpt, tmp_path):
    out = tmp_path / "slowonly.pt"
    proc = run_example("export_torchscript.py", MODEL, "--checkpoint", str(ckpt), "--out", str(out), "--size", "32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diff = float(re.search(r"max \|exported - eager\| = ([\deE.+-]+)", proc.stdout).group(1))
    assert diff <= 1e-4 and "same top-1: True" in proc.stdout
    loaded = torch.jit.load(str(out))
    eager = create_model(MODEL, checkpoint_path=ckpt)
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), eager(x), rtol=1e-4, atol=1e-5)
