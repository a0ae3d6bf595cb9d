"""FAIR's test protocols in ``verify`` and ``predict``: PySlowFast's frame sampling and crops against worked examples
of its formulas (SlowFast ``slowfast/datasets/decoder.py``, ``transform.py``; pytorchvideo 0.1.5 ``data/ssv2.py``),
the test views against an independent decode + float resize, and both commands end to end on generated videos with
the entries' view ensembles (sum, max), activations (softmax, sigmoid) and metrics (top-k, mAP).

Parity with PySlowFast itself cannot be run here: it is not on PyPI, and pytorchvideo 0.1.5's transforms do not
import on torch 2.14, so the references below are the formulas of their source, computed independently.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

from slowonly_zoo import get_model_info
from slowonly_zoo.data.pipeline import TestPipeline, fair_crop_offsets
from slowonly_zoo.data.sampling import pyslowfast_decoder_indices, segment_middle_indices
from slowonly_zoo.errors import UnsupportedProtocolError
from slowonly_zoo.evaluation import verify
from slowonly_zoo.evaluation.scores import read_scores
from slowonly_zoo.inference import Predictor, inference_protocol
from slowonly_zoo.models.head import I3DHead

K400 = "slow_r50_8x8_k400_pyslowfast"
CHARADES = "slow_r50_8x8_charades_pytorchvideo"
SSV2 = "slow_r50_8x8_ssv2_pytorchvideo"


# ----------------------------------------------------------------------------------------------- sampling


def test_decoder_sampling_with_a_time_base_matches_worked_examples() -> None:
    # 300 frames at 30 fps, 8x8: clip_size = 8 * 8 / 30 * 30 = 64, delta = 236; clip 1 starts at 23.6, ends at 86.6;
    # pts (512 per frame): int(23.6 * 512) = 12083 -> first frame 24; int(86.6 * 512) = 44339 -> frame 86, plus the
    # one frame past it -> 24..87 (64 frames); linspace(0, 63, 8) = 0, 9, ..., 63
    idx = pyslowfast_decoder_indices(300, 30.0, 8, 8, 10, pts_per_frame=512.0)
    assert idx.shape == (10, 8)
    assert idx[0].tolist() == list(range(0, 64, 9))
    assert idx[1].tolist() == list(range(24, 88, 9))
    # clip 9: start 212.4 -> pts 108748 -> frame 213; end 275.4 -> pts 141004 -> frame 275, + 1 -> 213..276
    assert idx[9].tolist() == list(range(213, 277, 9))
    # 4x16 spans the same 64 frames with 4 samples: linspace(0, 63, 4)
    assert pyslowfast_decoder_indices(300, 30.0, 4, 16, 10, pts_per_frame=512.0)[1].tolist() == [24, 45, 66, 87]


def test_decoder_sampling_at_other_frame_rates_and_without_a_duration() -> None:
    # 25 fps: clip_size = 64 / 30 * 25 = 53.33; 250 frames, 2 clips: delta = 196.67, clip 1 from 98.33 to 150.67;
    # pts (1 per frame): 98 -> frame 98, 150 -> frame 150, + 1 -> 98..151 (54 frames);
    # linspace(0, 52.33, 8) = 0, 7.48, 14.95, 22.43, 29.9, 37.38, 44.86, 52.33 -> 0 7 14 22 29 37 44 52
    idx = pyslowfast_decoder_indices(250, 25.0, 8, 8, 2, pts_per_frame=1.0)
    assert idx[1].tolist() == [98, 105, 112, 120, 127, 135, 142, 150]
    # 60 fps: the same 64/30 s span is 128 frames: frames 0..128, linspace(0, 127, 8) steps of 18.14
    assert pyslowfast_decoder_indices(600, 60.0, 8, 8, 10, pts_per_frame=256.0)[0].tolist() == [
        0, 18, 36, 54, 72, 90, 108, 127,
    ]  # fmt: skip
    # no duration in the header: the whole video is decoded and linspace(23.6, 86.6, 8) truncated
    assert pyslowfast_decoder_indices(300, 30.0, 8, 8, 10)[1].tolist() == list(range(23, 87, 9))


def test_decoder_sampling_of_a_short_video_clamps_to_its_last_frame() -> None:
    # 40 frames < 64: every clip starts at 0; frames 0..39 are decoded; linspace(0, 63, 8) clamped to 39
    idx = pyslowfast_decoder_indices(40, 30.0, 8, 8, 3, pts_per_frame=512.0)
    assert idx.tolist() == [[0, 9, 18, 27, 36, 39, 39, 39]] * 3
    assert pyslowfast_decoder_indices(1, 30.0, 8, 8, 2).tolist() == [[0] * 8] * 2


def _pytorchvideo_clip_indices(n: int, fps: Fraction, clip_len: int, interval: int, num_clips: int) -> np.ndarray:
    """The frames PySlowFast's pytorchvideo datasets (``ptv_datasets.py`` ``Ptvkinetics``, behind the ``.pyth``
    numbers) take: pytorchvideo 0.1.5 ``ConstantClipsPerVideoSampler`` over a clip of ``clip_len * interval / 30`` s,
    the frames with timestamps in ``[start, end)``, then ``UniformTemporalSubsample`` (``linspace(0, t - 1, n)``)."""
    clip = Fraction(clip_len * interval, 30)
    uniform = max(Fraction(n) / fps - clip, 0) / num_clips
    rows = []
    for k in range(num_clips):
        start = uniform * k
        frames = [i for i in range(n) if start <= Fraction(i) / fps < start + clip]
        index = torch.clamp(torch.linspace(0, len(frames) - 1, clip_len), 0, len(frames) - 1).long()
        rows.append([frames[j] for j in index.tolist()])
    return np.array(rows)


def test_decoder_rule_vs_pytorchvideo_clip_sampler() -> None:
    """What the README states about the .pyth entries: one frame position apart at most for videos longer than the
    clip; shorter ones differ (pytorchvideo spreads the clip over the short video, the decoder repeats its end)."""
    worst = 0
    for fps in (Fraction(25), Fraction(30), Fraction(30000, 1001)):
        for n in range(80, 330, 31):
            ptv = _pytorchvideo_clip_indices(n, fps, 8, 8, 10)
            ours = pyslowfast_decoder_indices(n, float(fps), 8, 8, 10, 30.0, float(15360 / fps))
            worst = max(worst, int(np.abs(ptv - ours).max()))
    assert worst == 1
    short = _pytorchvideo_clip_indices(40, Fraction(30), 8, 8, 1)[0].tolist()
    assert short == [0, 5, 11, 16, 22, 27, 33, 39]
    assert pyslowfast_decoder_indices(40, 30.0, 8, 8, 1, 30.0, 512.0)[0].tolist() == [0, 9, 18, 27, 36, 39, 39, 39]


def test_segment_middle_rounds_half_to_even() -> None:
    # 30 frames, 8 segments: seg = 29 / 8 = 3.625; bounds round(3.625 i) = 0 4 7 11 14 (14.5 -> 14) 18 22 25 29
    assert segment_middle_indices(30, 8).tolist() == [[2, 5, 9, 12, 16, 20, 23, 27]]


# ----------------------------------------------------------------------------------------------- spatial


def test_fair_resize_and_crops_follow_pyslowfast() -> None:
    pipe = TestPipeline(get_model_info(K400).protocol)
    assert pipe.resized_size(240, 320) == (256, 341)  # floor(320 / 240 * 256) = 341
    assert pipe.resized_size(480, 360) == (341, 256)  # portrait: floor(480 / 360 * 256)
    assert pipe.resized_size(256, 300) == (256, 300)  # short side already 256: no resize
    assert pipe.resized_size(100, 177) == (256, 453)  # floor(453.12); mmcv's rounding would give 453 too
    assert pipe.resized_size(100, 175) == (256, 448)  # floor(448.0)
    # uniform_crop: centre at ceil((341 - 256) / 2) = 43 (mmaction2's ThreeCrop: 42), spatial_idx 0, 1, 2
    assert pipe.crop_offsets(256, 341) == [(0, 0), (0, 43), (0, 85)]
    assert fair_crop_offsets(455, 256, 256, 3) == [(0, 0), (100, 0), (199, 0)]
    assert fair_crop_offsets(256, 256, 256, 3) == [(0, 0), (0, 0), (0, 0)]
    assert fair_crop_offsets(256, 341, 256, 1) == [(0, 43)]


def write_video(path: Path, frames: int, size: tuple[int, int] = (240, 320), fps: int = 30, seed: int = 0) -> Path:
    """A real H.264 clip of smooth random frames (H, W = ``size``)."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            image = np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.float32))[:h, :w]
            image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def _pyslowfast_clip_frames(path: Path, protocol) -> list[np.ndarray]:
    """Each test clip's frames as PySlowFast's PyAV decoder picks them, on the file's real timestamps (SlowFast
    ``decoder.py``: ``get_start_end_idx`` over the header's frame count, pts = index * duration / frames,
    ``pyav_decode_stream`` keeping ``start_pts <= pts <= end_pts`` plus the first frame past it, then
    ``temporal_sampling`` with ``linspace(0, clip_size - 1, n)``)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps, frames_length, duration = float(stream.average_rate), stream.frames, stream.duration
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    clip_size = protocol.frame_interval * protocol.clip_len / 30.0 * fps
    delta = max(frames_length - clip_size, 0)
    clips = []
    for k in range(protocol.num_clips):
        start = delta * k / protocol.num_clips
        start_pts, end_pts = (
            int(start * duration / frames_length),
            int((start + clip_size - 1) * duration / frames_length),
        )
        kept = []
        for pts, image in decoded:
            if pts < start_pts:
                continue
            kept.append(image)
            if pts > end_pts:
                break
        index = torch.clamp(torch.linspace(0, clip_size - 1, protocol.clip_len), 0, len(kept) - 1).long()
        clips.append(np.stack([kept[i] for i in index.tolist()]))
    return clips


def _pyslowfast_views(path: Path, protocol) -> torch.Tensor:
    """PySlowFast's test views of ``path`` computed independently: its decoder's frames, /255 and mean/std
    normalisation, bilinear resize of the float frames (align_corners=False), uniform crops."""
    clips = []
    for frames in _pyslowfast_clip_frames(path, protocol):
        x = torch.from_numpy(frames).float() / 255.0
        x = ((x - 0.45) / 0.225).permute(3, 0, 1, 2)  # C T H W
        h, w = x.shape[2:]
        new_h, new_w = (256, math.floor(w / h * 256)) if h <= w else (math.floor(h / w * 256), 256)
        clips.append(nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False))
    views = []
    for top, left in fair_crop_offsets(*clips[0].shape[2:], 256, 3):
        views += [c[:, :, top : top + 256, left : left + 256] for c in clips]
    return torch.stack(views)


@pytest.mark.parametrize(("frames", "fps", "size"), [(90, 30, (240, 320)), (70, 25, (320, 240))])
def test_fair_views_match_an_independent_float_pipeline(tmp_path: Path, frames: int, fps: int, size) -> None:
    video = write_video(tmp_path / "a.mp4", frames, size=size, fps=fps)
    protocol = dataclasses.replace(get_model_info(K400).protocol, num_clips=2)
    plan, views = TestPipeline(protocol).run(video)
    ref = _pyslowfast_views(video, protocol)
    if fps == 30:
        assert plan.indices.tolist() == [list(range(0, 64, 9)), list(range(13, 77, 9))]  # delta 26: 13.0 .. 76.0
    assert views.shape == ref.shape == (6, 3, 8, 256, 256)
    # the one difference left: the zoo resizes uint8 frames (OpenCV-exact: 11-bit weights, rounded to uint8) and
    # normalises after, PySlowFast resizes the normalised float frames: under one grey level (measured: 0.79 max)
    diff = (views - ref).abs() * 255 * 0.225  # in grey levels
    assert diff.max().item() <= 1.0
    assert diff.mean().item() <= 0.3


def test_ssv2_pipeline_takes_segment_middles_and_refuses_a_sampling_override(tmp_path: Path) -> None:
    video = write_video(tmp_path / "s.mp4", 30, size=(256, 300))
    plan, views = TestPipeline(get_model_info(SSV2).protocol).run(video)
    assert plan.indices.tolist() == [[2, 5, 9, 12, 16, 20, 23, 27]]
    assert views.shape == (3, 3, 8, 256, 256)
    with pytest.raises(UnsupportedProtocolError, match="leave sampling unset"):
        TestPipeline(get_model_info(SSV2).protocol, sampling="pyslowfast")


# ----------------------------------------------------------------------------------------------- verify / predict


class TinyFairNet(nn.Module):
    """A small network with the zoo's FAIR head on a stride-32 map (8x8 at 256 crops, as R50's)."""

    def __init__(self, num_classes: int, mode: str, activation: str, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv3d(3, 16, (1, 32, 32), stride=(1, 32, 32))
        self.head = I3DHead(16, num_classes, dropout=0.0, mode=mode, pool_frames=8, activation=activation)
        with torch.no_grad():
            self.head.fc.weight.normal_(0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fair_videos")
    write_video(root / "a.mp4", 70, seed=1)
    write_video(root / "b.mp4", 50, size=(320, 240), seed=2)  # portrait, shorter than a clip
    write_video(root / "c.mp4", 80, fps=25, seed=3)
    return root


_VIEWS: dict[tuple[Path, str], torch.Tensor] = {}  # K400's and Charades' protocols make the same views


def _independent_scores(model: nn.Module, root: Path, names: list[str], protocol, activation, ensemble) -> np.ndarray:
    rows = []
    for name in names:
        key = (root / name, repr(dataclasses.replace(protocol, view_ensemble="", score_activation="", metric="")))
        if key not in _VIEWS:
            _VIEWS[key] = TestPipeline(protocol)(root / name)
        views = _VIEWS[key]
        with torch.no_grad():
            out = model.eval()(views)
        if activation == "softmax":
            scores = out if model.head.outputs_probabilities else torch.softmax(out, -1)
        else:
            scores = out if model.head.outputs_probabilities else torch.sigmoid(out)
        rows.append((scores.sum(0) / scores.shape[0]) if ensemble == "sum" else scores.max(0).values)
    return torch.stack(rows).numpy()


def test_verify_runs_a_fair_kinetics_entry_with_summed_probabilities(tmp_path: Path, videos: Path) -> None:
    entry = get_model_info(K400)
    model = TinyFairNet(entry.num_classes, "pyslowfast", "softmax")
    ckpt = tmp_path / "tiny.pyth"
    torch.save({"model_state": model.state_dict()}, ckpt)
    (tmp_path / "list.txt").write_text("a.mp4 3\nb.mp4 7\nc.mp4 11\n")
    printed: list[str] = []
    result = verify(K400, videos, tmp_path / "list.txt", checkpoint=ckpt, out=tmp_path / "out", num_workers=0,
                    model_factory=lambda e, p: model, print_fn=printed.append, progress=False)  # fmt: skip
    expected = _independent_scores(model, videos, ["a.mp4", "b.mp4", "c.mp4"], entry.protocol, "softmax", "sum")
    table = read_scores(tmp_path / "out")
    assert np.abs(table.scores - expected).max() <= 1e-5
    assert np.allclose(table.scores.sum(axis=1), 1.0, atol=1e-5)  # probabilities: no second softmax
    top1 = 100.0 * np.mean(np.argmax(expected, axis=1) == np.array([3, 7, 11]))
    assert result.metrics is not None and result.metrics["top1"] == pytest.approx(top1)
    assert "top-1 accuracy" in printed[0] and "74.80" in printed[0]


def test_verify_runs_charades_with_sigmoid_max_and_map(tmp_path: Path, videos: Path) -> None:
    entry = get_model_info(CHARADES)
    assert (entry.protocol.score_activation, entry.protocol.view_ensemble) == ("sigmoid", "max")
    (tmp_path / "list.txt").write_text("a.mp4 3 5\nb.mp4 5\nc.mp4 3 9 100\n")  # mmaction2-style multi-label list
    targets = np.zeros((3, entry.num_classes), dtype=np.int64)
    for row, labels in enumerate([(3, 5), (5,), (3, 9, 100)]):
        targets[row, list(labels)] = 1
    for mode in ("pytorchvideo",):  # logits, sigmoid in the runner (probabilities from the head: the K400 test)
        model = TinyFairNet(entry.num_classes, mode, "sigmoid", seed=4)
        ckpt = tmp_path / f"{mode}.pyth"
        torch.save({"model_state": model.state_dict()}, ckpt)
        printed: list[str] = []
        result = verify(CHARADES, videos, tmp_path / "list.txt", checkpoint=ckpt, out=tmp_path / mode,
                        num_workers=0, model_factory=lambda e, p, m=model: m, print_fn=printed.append,
                        progress=False)  # fmt: skip
        expected = _independent_scores(model, videos, ["a.mp4", "b.mp4", "c.mp4"], entry.protocol, "sigmoid", "max")
        assert np.abs(read_scores(tmp_path / mode).scores - expected).max() <= 1e-5
        aps = []
        for k in (3, 5, 9, 100):  # classes with a positive; step-wise AP computed by hand from the ranking
            order = np.argsort(-expected[:, k], kind="stable")
            hits = targets[order, k]
            precision = np.cumsum(hits) / np.arange(1, 4)
            aps.append(float((precision * hits).sum() / hits.sum()))
        assert result.metrics == {"mean_average_precision": pytest.approx(100.0 * np.mean(aps))}
        assert "mean average precision" in printed[0] and "34.72" in printed[0]
        assert result.report is not None and result.report["reported"]["mean_average_precision"] == 34.72


def test_predict_on_a_fair_entry_shows_mean_probabilities(videos: Path) -> None:
    entry = get_model_info(K400)
    model = TinyFairNet(entry.num_classes, "pyslowfast", "softmax", seed=5)
    predictor = Predictor(model, entry=entry, progress=False)
    assert predictor.protocol.sampling == "pyslowfast-decoder" and predictor.outputs_probabilities
    pred = predictor.predict_one(videos / "a.mp4", topk=3)
    expected = _independent_scores(model, videos, ["a.mp4"], entry.protocol, "softmax", "sum")[0]
    assert pred.num_views == 30
    assert np.abs(pred.probs - expected).max() <= 1e-5 and abs(pred.probs.sum() - 1.0) <= 1e-5
    assert [c.index for c in pred.topk] == np.argsort(-expected, kind="stable")[:3].tolist()
    assert pred.topk[0].label == entry.labels[pred.topk[0].index]
    assert inference_protocol(entry, clips=1).num_views == 1


@pytest.mark.slow
def test_predict_loads_a_pytorchvideo_layout_checkpoint(tmp_path: Path, videos: Path) -> None:
    """The real R50 through ``predict(name, checkpoint=...)``: pytorchvideo 0.1.5's ``create_resnet`` (4x16 head)
    with random weights saved as a pytorchvideo ``.pyth``; one view, checked against that model's own output."""
    from pytorchvideo.models.resnet import create_resnet

    from slowonly_zoo.inference import predict

    name = "slow_r50_4x16_k400_pytorchvideo"
    torch.manual_seed(0)
    ptv = create_resnet(stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(4, 7, 7)).eval()
    path = tmp_path / "SLOW_4x16_R50.pyth"
    torch.save({"model_state": ptv.state_dict(), "epoch": 1}, path)
    (pred,) = predict(name, videos / "c.mp4", checkpoint=path, clips=1, device="cpu")
    protocol = inference_protocol(get_model_info(name), clips=1)
    views = TestPipeline(protocol)(videos / "c.mp4")
    with torch.no_grad():  # PySlowFast's test workflow on a pytorchvideo net: per-position softmax, then the mean
        feats = views
        for block in ptv.blocks[:5]:
            feats = block(feats)
        pooled = nn.functional.avg_pool3d(feats, (4, 7, 7), stride=1).permute(0, 2, 3, 4, 1)
        logits = ptv.blocks[5].proj(pooled)
        head_mode = get_model_info(name).architecture.head_mode
        ref = (torch.softmax(logits, -1) if head_mode == "pyslowfast" else logits).mean(dim=(1, 2, 3))
        ref = ref if head_mode == "pyslowfast" else torch.softmax(ref, -1)
    assert pred.num_views == 1
    assert np.abs(pred.probs - ref[0].numpy()).max() <= 1e-4
