"""Numerical parity with mmaction2's own SlowOnly implementation (the test-only reference from PyPI).

For each distinct architecture: build mmaction2's recognizer, randomise its weights and BatchNorm statistics,
publish it in the upstream checkpoint format, load that file with ``create_model(checkpoint_path=...)`` and
compare features and logits on the same input in eval mode.
"""

from __future__ import annotations

import zlib

import pytest
import torch
from reference import build_mmaction_recognizer, mmaction_logits, randomize_
from upstream_checkpoints import save_published

import slowonly_zoo

TOLERANCE = 1e-4  # max abs difference, fp32 (the reference is deterministic to ~4e-6 relative)

# (canonical entry, mmaction2 architecture kwargs, input shape)
VARIANTS = [
    ("slowonly_r50_4x16x1_k400", dict(), (2, 3, 4, 64, 64)),
    ("slowonly_r50_nl_8x8x1_k400", dict(non_local=True), (2, 3, 4, 64, 64)),
    ("slowonly_r101_8x8x1_k400", dict(depth=101), (1, 3, 4, 64, 64)),
    ("slowonly_r50_4x16x1_k400_flow", dict(in_channels=2), (2, 2, 4, 64, 64)),
    ("slowonly_r50_8x4x1_sthv1", dict(with_pool1=False, num_classes=174), (2, 3, 8, 64, 64)),
    ("slowonly_r50_8x4x1_hmdb51_k400", dict(num_classes=51), (1, 3, 8, 64, 64)),
    ("slowonly_r50_4x16x1_gym99_flow", dict(in_channels=2, num_classes=400), (1, 2, 4, 64, 64)),
]


def _compare(name: str, mm_kwargs: dict, shape: tuple[int, ...], tmp_path, seed: int) -> None:
    torch.manual_seed(seed)
    reference = randomize_(build_mmaction_recognizer(**mm_kwargs), seed)
    path = save_published(reference.state_dict(), tmp_path, f"{name}_upstream")
    model = slowonly_zoo.create_model(name, checkpoint_path=path)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    ref_feats, ref_logits = mmaction_logits(reference, x)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
    assert feats.shape == ref_feats.shape
    assert logits.shape == ref_logits.shape == (shape[0], model.num_classes)
    assert ref_logits.std() > 0.05, "degenerate reference output: the comparison would check nothing"
    assert (feats - ref_feats).abs().max().item() <= TOLERANCE * max(1.0, ref_feats.abs().max().item())
    assert (logits - ref_logits).abs().max().item() <= TOLERANCE
    assert torch.equal(logits.argmax(1), ref_logits.argmax(1))


@pytest.mark.parametrize("name,mm_kwargs,shape", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_logits_match_mmaction2(name, mm_kwargs, shape, tmp_path):
    _compare(name, mm_kwargs, shape, tmp_path, seed=zlib.crc32(name.encode()) % 1000)


@pytest.mark.slow
def test_full_resolution_r50_8x224x224_matches_mmaction2(tmp_path):
    """The real input size of the 8x8x1 protocol's training crop, on the full R50."""
    _compare("slowonly_r50_8x8x1_k400", dict(), (1, 3, 8, 224, 224), tmp_path, seed=7)


def test_train_mode_matches_too(tmp_path):
    """BatchNorm in training mode (batch statistics) behaves like upstream's, so fine-tuning starts the same."""
    reference = randomize_(build_mmaction_recognizer(), 3)
    path = save_published(reference.state_dict(), tmp_path, "r50")
    model = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", checkpoint_path=path, dropout=0.0)
    reference.cls_head.dropout = torch.nn.Identity()
    reference.train()
    model.train()
    x = torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = reference.cls_head(reference.backbone(x))
        out = model(x)
    assert (out - ref).abs().max().item() <= TOLERANCE
