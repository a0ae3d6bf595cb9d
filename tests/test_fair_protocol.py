"""FAIR's test protocols: the segment sampler, the FAIR head modes on feature maps, and the CLI's provenance
filter (verify and predict on FAIR's protocols: tests/test_fair_protocols.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from slowonly_zoo.data.sampling import segment_middle_indices
from slowonly_zoo.models.head import I3DHead


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
