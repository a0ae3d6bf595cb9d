"""Resume: a CPU run killed with SIGKILL in epoch 2, then resumed from its work dir, ends with weights bit-identical
to an uninterrupted run, and its log records (timings aside) are the uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_clips import ENTRY, make_clips

from slowonly_zoo.weights.checkpoint import read_safetensors

TIMING_KEYS = {"time", "data_time", "memory"}

RUN = """
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from train_clips import ENTRY, tiny_recipe
from slowonly_zoo.training.trainer import TrainOptions, fit
fit(TrainOptions(
    name=ENTRY, data_root={root!r}, ann_file={ann!r}, val_ann_file={ann!r}, work_dir=sys.argv[1],
    init="scratch", epochs=3, batch_size=2, lr=0.01, num_workers=0, seed=5, deterministic=True,
    recipe=tiny_recipe(), val_interval=1, save_interval=1, resume=sys.argv[2] == "resume",
))
"""


def _start(script: Path, work: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, str(script), str(work), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _records(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_kill_in_epoch_2_then_resume_is_bit_identical(tmp_path):
    root = tmp_path / "clips"
    ann, _ = make_clips(root)
    tests = str(Path(__file__).resolve().parent)
    script = tmp_path / "run.py"
    script.write_text(RUN.format(tests=tests, root=str(root), ann=str(ann)))

    full = tmp_path / "full"
    proc = _start(script, full, "fresh")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    killed = tmp_path / "killed"
    proc = _start(script, killed, "fresh")
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:  # wait for the first record of epoch 2, then kill -9
            log = killed / "log.jsonl"
            if log.exists() and any(json.loads(x)["epoch"] == 2 for x in log.read_text().splitlines() if x.strip()):
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "epoch_2.safetensors").exists(), "killed too late: epoch 2 had finished"
    before = _records(killed)
    assert before[-1]["epoch"] == 2 and before[-1]["mode"] == "train"
    latest_epoch = int(torch.load(killed / "latest.pt", weights_only=True)["epoch"])
    assert latest_epoch == 1

    proc = _start(script, killed, "resume")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "resumed from" in out and "epoch 1, iteration 4" in out

    a = read_safetensors(full / "epoch_3.safetensors")
    b = read_safetensors(killed / "epoch_3.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].equal(b[k]))]
    assert not different, different[:5]

    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]

    full_log, resumed_log = _records(full), _records(killed)
    assert len(full_log) == 3 * 4 + 3  # 4 iterations and one val record per epoch
    assert strip(resumed_log) == strip(full_log)
    # the latest states agree too (optimizer momentum, scheduler position, best top-1)
    sa = torch.load(full / "latest.pt", weights_only=True)
    sb = torch.load(killed / "latest.pt", weights_only=True)
    assert sa["scheduler"] == sb["scheduler"] and sa["iter"] == sb["iter"] == 12
    for key, state in sa["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], sb["optimizer"]["state"][key]["momentum_buffer"])
    assert ENTRY == sa["model_name"] == sb["model_name"]
