"""``slowonly_zoo.inference`` (predict) and ``slowonly_zoo.features`` (extract) on real clips and frame folders, with
upstream-format checkpoints written by the tests; protocol choices for user videos; input expansion and sliding
windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from support import scratch_dir
from upstream_checkpoints import write_upstream_checkpoint

from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.features import extract, sliding_window_indices
from slowonly_zoo.index import get_model_info
from slowonly_zoo.inference import (
    InferenceError,
    Predictor,
    check_source,
    inference_protocol,
    predict,
)
from slowonly_zoo.inputs import expand_inputs

VIDEO_MODEL = "slowonly_r50_4x16x1_k400_video"
GYM_RGB = "slowonly_r50_4x16x1_gym99"


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Iterator[Path]:
    with scratch_dir(tmp_path_factory, "inference_ckpts") as d:
        yield d


@pytest.fixture(scope="module")
def video_ckpt(ckpt_dir) -> Path:
    return write_upstream_checkpoint(ckpt_dir, VIDEO_MODEL, seed=11)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


def write_frames(video: Path, folder: Path, count: int | None = None) -> Path:
    """Decode ``video`` with PyAV and save its frames as img_00001.jpg, ... (a rawframe folder)."""
    folder.mkdir(parents=True)
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0), 1):
            frame.to_image().save(folder / f"img_{i:05d}.jpg", quality=95)
            if count is not None and i >= count:
                break
    return folder


# ------------------------------------------------------------------------------------------------ protocols


def test_inference_protocol_choices():
    k400 = get_model_info(VIDEO_MODEL)
    assert inference_protocol(k400) == k400.protocol  # the full upstream protocol, unchanged
    fast = inference_protocol(k400, clips=1)
    assert (fast.num_clips, fast.crop, fast.num_views, fast.crop_size) == (1, "center", 1, 256)
    k600 = get_model_info("slowonly_r50_8x8x1_k600")
    assert k600.protocol.resize_short is None  # test videos stored at short side 256 ...
    assert inference_protocol(k600).resize_short == 256  # ... so user videos are resized to it
    with pytest.raises(InferenceError, match="--clips must be 1 or more"):
        inference_protocol(k400, clips=0)


def test_sliding_windows():
    # 4 frames every 16: a clip spans 49 frames
    w = sliding_window_indices(131, 4, 16, 40)
    assert w.tolist() == [[0, 16, 32, 48], [40, 56, 72, 88], [80, 96, 112, 128]]
    assert sliding_window_indices(32, 4, 16, 8).tolist() == [[0, 16, 0, 16]]  # shorter than a clip: wraps
    assert sliding_window_indices(10, 2, 1, 3, start_index=1)[:, 0].tolist() == [1, 4, 7]
    with pytest.raises(InferenceError):
        sliding_window_indices(10, 2, 1, 0)


def test_expand_inputs_and_source_checks(tmp_path, shared_videos):
    vids = tmp_path / "vids"
    vids.mkdir()
    for name in ("b.mp4", "a.avi", "notes.md"):
        (vids / name).write_bytes(b"x")
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (8, 8)).save(frames / "img_00001.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("# a comment\nvids/a.avi 3\n\nframes 1 0\n", encoding="utf-8")
    assert expand_inputs([vids]) == [vids / "a.avi", vids / "b.mp4"]
    assert expand_inputs([listing]) == [tmp_path / "vids/a.avi", tmp_path / "frames"]
    assert expand_inputs([frames, shared_videos / "archery.avi"]) == [frames, shared_videos / "archery.avi"]
    with pytest.raises(InferenceError, match="neither video files"):
        expand_inputs([_empty_dir(tmp_path)])

    flow = get_model_info("slowonly_r50_4x16x1_k400_flow")
    with pytest.raises(InferenceError, match="optical-flow model"):
        check_source(flow, shared_videos / "archery.avi")
    with pytest.raises(InferenceError, match="no x_"):
        check_source(flow, frames)
    with pytest.raises(InferenceError, match="does not exist"):
        check_source(get_model_info(VIDEO_MODEL), tmp_path / "missing.mp4")


def _empty_dir(root: Path) -> Path:
    d = root / "empty"
    d.mkdir()
    return d


# ------------------------------------------------------------------------------------------------ predict


def test_predict_rawframe_folder_equals_video(tmp_path, video_ckpt, shared_videos):
    """A folder of the video's own frames (JPEG, so not bit-identical) gives nearly the same probabilities."""
    video = shared_videos / "cleaning_pool_32f.mp4"
    folder = write_frames(video, tmp_path / "cleaning_pool")
    predictor = Predictor(VIDEO_MODEL, checkpoint=video_ckpt, clips=1, device="cpu")
    p_video, n_video = predictor.probabilities(video)
    p_frames, n_frames = predictor.probabilities(folder)
    assert n_video == n_frames == 1
    assert abs(p_frames.sum() - 1) < 1e-5
    assert np.abs(p_video - p_frames).max() < 0.05 * p_video.max()  # JPEG re-encoding noise only
    assert np.argmax(p_video) == np.argmax(p_frames) or np.corrcoef(p_video, p_frames)[0, 1] > 0.99


def test_predict_gym99_ranks_named_classes_only(tmp_path, ckpt_dir, shared_videos):
    ck = write_upstream_checkpoint(ckpt_dir, GYM_RGB, seed=12)
    (pred,) = predict(GYM_RGB, shared_videos / "archery.avi", checkpoint=ck, clips=1, topk=10, device="cpu")
    labels = get_model_info(GYM_RGB).labels
    assert len(labels) == 99 and pred.probs.shape == (400,)
    assert all(c.index < 99 and c.label == labels[c.index] for c in pred.topk)
    assert [c.index for c in pred.topk] == list(np.argsort(-pred.probs[:99], kind="stable")[:10])
    assert pred.unlabelled_prob == pytest.approx(pred.probs[99:].sum())
    assert pred.probs.sum() == pytest.approx(1.0, abs=1e-5)  # upstream's 400-way softmax, averaged
    assert pred.to_dict()["unlabelled_prob"] == pred.unlabelled_prob


def test_predict_full_protocol_is_upstream_prob_averaging(shared_videos):
    """Default mode: all 30 test views of the data pipeline, softmax per view, mean over views. (A small stand-in
    network keeps this fast; the R50 forward on test views is covered by the model and verify tests.)"""
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(
        torch.nn.Conv3d(3, 8, (1, 16, 16), stride=(1, 16, 16)),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 400),
    )
    entry = get_model_info(VIDEO_MODEL)
    video = shared_videos / "arm_wrestling.mp4"
    predictor = Predictor(tiny, entry=entry, device="cpu", batch_views=7)  # batches of 7 views: 7+7+7+7+2
    probs, views = predictor.probabilities(video)
    assert views == 30
    x = TestPipeline(entry.protocol)(video)
    assert x.shape == (30, 3, 4, 256, 256)
    with torch.inference_mode():
        expected = torch.softmax(tiny(x), -1).mean(0).double().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-8)
    with pytest.raises(InferenceError, match="either a model object or a checkpoint"):
        Predictor(tiny, entry=entry, checkpoint="x.pth")


# ------------------------------------------------------------------------------------------------ extract


def test_extract_failures_are_recorded_and_outputs_mirror_inputs(tmp_path, video_ckpt, shared_videos):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = tmp_path / "a" / "clip.mp4"
    good.symlink_to(shared_videos / "cleaning_pool_32f.mp4")
    bad = tmp_path / "b" / "clip.mp4"  # same stem, other folder: outputs must not collide
    bad.write_bytes(b"not a video at all")
    events = []
    summary = extract(
        VIDEO_MODEL,
        [good, bad],
        tmp_path / "out",
        checkpoint=video_ckpt,
        clips=1,
        fmt="npy",
        device="cpu",
        on_progress=lambda *e: events.append(e),
    )
    assert summary.written == [tmp_path / "out" / "a" / "clip.npy"]
    assert [v for v, _ in summary.failed] == [str(bad)] and "clip.mp4" in summary.failed[0][1]
    assert [e[1] for e in events] == ["written", "failed"]
    assert np.load(summary.written[0]).shape == (2048,)
    assert not list((tmp_path / "out").rglob("*.tmp"))  # atomic writes leave nothing behind
    with pytest.raises(InferenceError, match="more than once"):
        extract(VIDEO_MODEL, [good, good], tmp_path / "out2", checkpoint=video_ckpt)
    with pytest.raises(InferenceError, match="unknown layer"):
        extract(VIDEO_MODEL, [good], tmp_path / "out3", layer="layer3")


def test_predict_flow_folder(tmp_path):
    """A flow model reads x_/y_ JPEG pairs (2 channels), with the GYM99 flow protocol's single centre crop."""
    folder = tmp_path / "flow"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 21):
        for axis in "xy":
            Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8), "L").save(folder / f"{axis}_{i:05d}.jpg")
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, (1, 32, 32), stride=(1, 32, 32)),
        torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 400),
    )
    entry = get_model_info("slowonly_r50_4x16x1_gym99_flow")
    pred = Predictor(tiny, entry=entry, device="cpu").predict_one(folder, topk=3)
    assert pred.num_views == 10  # 10 clips x CenterCrop
    assert all(c.index < 99 for c in pred.topk)
    x = TestPipeline(entry.protocol)(folder)
    assert x.shape == (10, 2, 4, 256, 256)
    with torch.inference_mode():
        expected = torch.softmax(tiny(x), -1).mean(0).double().numpy()
    np.testing.assert_allclose(pred.probs, expected, rtol=1e-5, atol=1e-8)
