"""Inference rewrites keep the outputs: BatchNorm folding and channels-last 3D."""

from __future__ import annotations

import pytest
import torch
from reference import randomize_

from slowonly_zoo.factory import build_architecture
from slowonly_zoo.index import get_model_info
from slowonly_zoo.models.fuse import FixedBatch, fuse_batchnorm, optimize_for_inference, views_per_forward


def test_fused_model_gives_the_same_logits_and_has_no_batchnorm():
    model = randomize_(build_architecture(get_model_info("slowonly_r50_nl_4x16x1_k400")), 11).eval()
    x = torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    fused = optimize_for_inference(model)
    stem_weight = fused.backbone.stem.conv.weight
    assert stem_weight.is_contiguous(memory_format=torch.channels_last_3d), "channels-last by default"
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()), "the original must be untouched"
    with torch.inference_mode():
        ref, out = model(x), fused(x)
        out_contiguous = fuse_batchnorm(model)(x)
        out_bf16 = optimize_for_inference(model, dtype=torch.bfloat16)(x.bfloat16()).float()
    assert ref.std() > 0.05
    assert (out - ref).abs().max().item() <= 1e-4
    assert (out_contiguous - ref).abs().max().item() <= 1e-4
    assert (out_bf16 - ref).abs().max().item() <= 0.1 * ref.abs().max().item()  # bf16: ~3 significant digits


def test_views_per_forward_is_one_view_on_cpu_and_the_batch_on_cuda():
    assert views_per_forward("cpu", 60) == 1
    assert views_per_forward(torch.device("cpu"), 1) == 1
    assert views_per_forward("cuda", 60) == 60  # only the device type matters: no GPU needed to ask
    assert views_per_forward("cuda", 0) == 1


def test_fixed_batch_pads_and_splits():
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return x.flatten(1).sum(1, keepdim=True)

    x = torch.randn(7, 2, 3)
    out = FixedBatch(Record(), 3)(x)
    assert seen == [3, 3, 3]
    assert torch.allclose(out, x.flatten(1).sum(1, keepdim=True))


@pytest.mark.slow
def test_compiled_model_gives_the_same_logits():
    """torch.compile with weight freezing (inductor, oneDNN on CPU): the fast path of verify --compile."""
    model = randomize_(build_architecture(get_model_info("slowonly_r50_8x4x1_sthv1")), 12).eval()
    x = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    compiled = optimize_for_inference(model, compile=True)
    with torch.inference_mode():
        ref, out = model(x), compiled(x)
    assert compiled._use_compiled, "compilation fell back to eager"
    assert (out - ref).abs().max().item() <= 1e-4
