"""End to end against upstream: per-video class probabilities from ``verify`` equal mmaction2's own.

mmaction2's side: its test pipeline (decord decode, ``Resize``, ``ThreeCrop``, ``FormatShape``; mmaction2 0.x's
``SampleFrames`` offsets, since the README numbers come from 0.x) and its own recognizer with the same randomised
weights, prob-averaged over the 30 views as ``average_clips='prob'`` does. Our side: ``slowonly_zoo.evaluation.
verify`` reading the same upstream-format checkpoint file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mm_pipeline import mmaction_views
from reference import build_mmaction_recognizer, randomize_
from upstream_checkpoints import save_published

from slowonly_zoo.evaluation import verify
from slowonly_zoo.evaluation.scores import read_scores
from slowonly_zoo.index import get_model_info

TOLERANCE = 3e-3  # the bound this test accepts (probabilities); what we reach is printed and asserted far tighter below
CLIPS = ["arm_wrestling.mp4", "cleaning_pool_32f.mp4"]


@pytest.mark.slow
def test_verify_probabilities_equal_mmaction2_pipeline_and_model(tmp_path, shared_videos):
    name = "slowonly_r50_4x16x1_k400_video"
    entry = get_model_info(name)
    reference = randomize_(build_mmaction_recognizer(), seed=21)
    ckpt = save_published(reference.state_dict(), tmp_path / "ckpt", "slowonly_r50_video_4x16x1_upstream")
    (tmp_path / "videos").mkdir()
    for clip in CLIPS:
        (tmp_path / "videos" / clip).symlink_to(shared_videos / clip)
    ann = tmp_path / "list.txt"
    ann.write_text("".join(f"videos/{clip} 6\n" for clip in CLIPS))

    verify(
        name,
        tmp_path,
        ann,
        checkpoint=ckpt,
        out=tmp_path / "out",
        num_workers=0,
        device="cpu",
        progress=False,
        print_fn=None,
    )
    ours = read_scores(tmp_path / "out")
    assert list(ours.ids) == [f"videos/{clip}" for clip in CLIPS]

    for row, clip in enumerate(CLIPS):
        views = torch.from_numpy(mmaction_views(entry.protocol, shared_videos / clip))
        assert views.shape == (30, 3, 4, 256, 256)
        with torch.no_grad():
            probs = reference.cls_head(reference.backbone(views)).softmax(-1).mean(0).numpy()
        diff = float(np.abs(ours.scores[row] - probs).max())
        print(f"{clip}: max |prob diff| vs mmaction2 = {diff:.2e}")
        assert probs.max() > 2.0 / 400, "degenerate reference: probabilities are uniform"
        assert diff <= TOLERANCE
        assert diff <= 1e-5, "frame-exact decoding and OpenCV-exact resizing should agree to float rounding"
        assert int(ours.scores[row].argmax()) == int(probs.argmax())
