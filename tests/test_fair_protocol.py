"""FAIR's test protocols: their samplers (pure functions), the FAIR head modes on feature maps, and the commands
that do not run FAIR's protocols yet refusing them by name instead of running mmaction2's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from slowonly_zoo import get_model_info
from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.data.sampling import pyslowfast_decoder_indices, segment_middle_indices
from slowonly_zoo.errors import UnsupportedProtocolError
from slowonly_zoo.inference import inference_protocol
from slowonly_zoo.models.head import I3DHead


def test_pyslowfast_decoder_spreads_frames_over_a_30_fps_window() -> None:
    # 30-fps video: 8 frames 8 apart; clip k starts at delta * k / 10 with delta = 299 - 56
    idx = pyslowfast_decoder_indices(300, 30.0, 8, 8, 10)
    assert idx.shape == (10, 8)
    assert np.array_equal(idx[0], np.arange(0, 57, 8))
    assert np.array_equal(idx[:, 0], (243 * np.arange(10) / 10).astype(np.int64))
    assert (np.diff(idx, axis=1) == 8).all()
    # a 60-fps video: the same 64/30 s span covers twice the frames
    assert np.array_equal(pyslowfast_decoder_indices(600, 60.0, 8, 8, 1)[0], np.arange(0, 113, 16))
    short = pyslowfast_decoder_indices(20, 30.0, 8, 8, 10)  # shorter than a clip: every clip from frame 0
    assert (short[:, 0] == 0).all() and short.max() == 19


def test_segment_middle_takes_the_middle_of_each_segment() -> None:
    assert segment_middle_indices(81, 8).tolist() == [[5, 15, 25, 35, 45, 55, 65, 75]]
    assert segment_middle_indices(4, 8).shape == (1, 8)  # fewer frames than segments: frames repeat
    assert segment_middle_indices(4, 8).max() <= 3


def test_fair_heads_at_224_equal_the_global_head_and_differ_at_256() -> None:
    gen = torch.Generator().manual_seed(0)
    heads = {
        mode: I3DHead(16, 5, dropout=0.0, mode=mode, pool_frames=8).eval()
        for mode in ("global", "pytorchvideo", "pyslowfast")
    }
    for head in heads.values():
        head.load_state_dict(heads["global"].state_dict())
    with torch.no_grad():
        heads["global"].fc.weight.mul_(300)
        for name in ("pytorchvideo", "pyslowfast"):
            heads[name].fc.weight.copy_(heads["global"].fc.weight)
        for size, same in ((7, True), (8, False)):
            feats = torch.randn(2, 16, 8, size, size, generator=gen)
            logits = heads["global"](feats)
            assert torch.allclose(heads["pytorchvideo"](feats), logits, atol=1e-5) == same
            assert torch.allclose(heads["pyslowfast"](feats), logits.softmax(1), atol=1e-5) == same
        # pytorchvideo: the mean of per-window logits is the linear map of the mean window average
        windows = torch.nn.functional.avg_pool3d(feats, (8, 7, 7), stride=1).mean(dim=(2, 3, 4))
        assert torch.allclose(heads["pytorchvideo"](feats), heads["global"].fc(windows), atol=1e-5)
        heads["pyslowfast"].train()
        assert torch.allclose(heads["pyslowfast"](feats), heads["global"].fc(windows), atol=1e-5)  # logits


def test_commands_refuse_fair_protocols_by_name() -> None:
    for name in (
        "slow_r50_8x8_k400_pyslowfast",
        "slow_r50_8x8_ssv2_pytorchvideo",
        "slow_r50_8x8_charades_pytorchvideo",
    ):
        entry = get_model_info(name)
        with pytest.raises(UnsupportedProtocolError, match="predict does not run"):
            inference_protocol(entry)
        with pytest.raises(UnsupportedProtocolError, match=entry.protocol.sampling):
            TestPipeline(entry.protocol)
    with pytest.raises(UnsupportedProtocolError, match="max over views, sigmoid scores, mAP as the metric"):
        inference_protocol(get_model_info("slow_r50_8x8_charades_pytorchvideo"))
    plan = lambda total, start: segment_middle_indices(total, 8) + start  # noqa: E731
    assert TestPipeline(get_model_info("slow_r50_8x8_ssv2_pytorchvideo").protocol, frame_plan=plan)


def test_verify_refuses_fair_protocols(tmp_path) -> None:
    from slowonly_zoo.evaluation import verify

    (tmp_path / "list.txt").write_text("a.mp4 0\n")
    with pytest.raises(UnsupportedProtocolError, match="verify does not run"):
        verify("slow_r50_8x8_k400_pytorchvideo", data_root=tmp_path, ann_file=tmp_path / "list.txt",
               checkpoint=tmp_path / "missing.pyth", out=tmp_path / "out")  # fmt: skip


def test_cli_list_filters_by_provenance() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "slowonly_zoo", "list", "--provenance", "pyslowfast", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["slow_r50_4x16_k400_pyslowfast", "slow_r50_8x8_k400_pyslowfast"]
    assert {(r["provenance"], r["checkpoint_format"]) for r in rows} == {("pyslowfast", "caffe2-pkl")}
    info = subprocess.run(
        [sys.executable, "-m", "slowonly_zoo", "info", "slowonly_r50_8x8x1_k400", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(info)
    assert data["provenance"] == "mmaction2-0.x" and data["checkpoint"]["format"] == "mmaction2-pth"
