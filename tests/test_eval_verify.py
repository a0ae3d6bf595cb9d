"""``verify`` end to end on a small real dataset built from ../shared/videos, with upstream-format checkpoints.

The entries verified here are zoo entries with the test protocol shrunk (2 clips, 64-px crops) so that a real
ResNet-50 SlowOnly runs in well under a second per video on a CPU; everything else (index entry, upstream ``.pth``
loading, decoding, annotation parsing, the runner, fusion, the report) is the real code path. One slow test runs an
unmodified entry with its full 30-view protocol.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from upstream_checkpoints import write_upstream_checkpoint

from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.evaluation import BadInputError, exit_status, read_scores, verify
from slowonly_zoo.factory import create_model
from slowonly_zoo.index import get_model_info, register_model_entry

GOOD_VIDEOS = {"archery.avi": 5, "arm_wrestling.mp4": 6, "cleaning_pool_32f.mp4": 62, "chaplin.mp4": 0}


def _shrunk(base: str, name: str, **protocol_changes) -> object:
    """Register a copy of zoo entry ``base`` under ``name`` with a cheaper test protocol."""
    entry = get_model_info(base)
    changes = {"num_clips": 2, "resize_short": 64, "crop_size": 64, **protocol_changes}
    protocol = dataclasses.replace(entry.protocol, **changes)
    return register_model_entry(dataclasses.replace(entry, name=name, aliases=(), protocol=protocol))


# ------------------------------------------------------------------------------------------- independent numbers


def _independent_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Upstream's definitions written out plainly (no shared code with slowonly_zoo.evaluation.metrics)."""
    n = len(labels)
    top1 = sum(int(np.argmax(s) == y) for s, y in zip(scores, labels)) / n
    top5 = sum(int(y in np.argsort(-s)[:5]) for s, y in zip(scores, labels)) / n
    pred = scores.argmax(axis=1)
    classes = sorted(set(pred.tolist()) | set(labels.tolist()))
    per_class = []
    for c in classes:
        members = labels == c
        per_class.append(float((pred[members] == c).mean()) if members.any() else 0.0)
    return {"top1": 100 * top1, "top5": 100 * top5, "mean_class_accuracy": 100 * float(np.mean(per_class))}


def _model_probs(model: torch.nn.Module, views: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(views), dim=1).mean(dim=0).numpy()


# ------------------------------------------------------------------------------------------- the dataset


@pytest.fixture(scope="module")
def video_data(tmp_path_factory, shared_videos: Path) -> tuple[Path, Path]:
    """``videos/`` with the real clips (symlinked), plus a missing, an empty and a truncated file."""
    root = tmp_path_factory.mktemp("video_data")
    (root / "videos").mkdir()
    lines = []
    for name, label in GOOD_VIDEOS.items():
        (root / "videos" / name).symlink_to(shared_videos / name)
        lines.append(f"videos/{name} {label}")
    (root / "videos" / "empty.mp4").write_bytes(b"")
    data = (shared_videos / "arm_wrestling.mp4").read_bytes()
    (root / "videos" / "truncated.mp4").write_bytes(data[: len(data) // 10])
    lines[2:2] = ["videos/missing.mp4 3", "videos/empty.mp4 4"]
    lines.append("videos/truncated.mp4 6")
    ann = root / "val_list_videos.txt"
    ann.write_text("\n".join(lines) + "\n")
    return root, ann


def _write_frames(folder: Path, video: Path, count: int, size: tuple[int, int]) -> None:
    """img_00001.jpg ... (RGB frames) and x_/y_ flow JPEGs (grey; from frame differences) for ``count`` frames."""
    folder.mkdir(parents=True)
    previous = None
    with av.open(str(video)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k >= count:
                break
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / f"img_{k + 1:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.int16)
            prev = grey if previous is None else previous
            cv2.imwrite(str(folder / f"x_{k + 1:05d}.jpg"), np.clip(128 + (grey - prev), 0, 255).astype(np.uint8))
            flow_y = np.clip(128 + (np.roll(grey, 1, 0) - prev), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"y_{k + 1:05d}.jpg"), flow_y)
            previous = grey


@pytest.fixture(scope="module")
def frame_data(tmp_path_factory, shared_videos: Path) -> tuple[Path, Path]:
    """GYM99-style frame folders (img_, x_ and y_ JPEGs side by side; total_frames = files // 3), one with a hole."""
    root = tmp_path_factory.mktemp("frame_data")
    lines = []
    for k, (name, label, count) in enumerate(
        [
            ("archery.avi", 5, 40),
            ("cleaning_pool_32f.mp4", 62, 32),
            ("arm_wrestling.mp4", 6, 36),
            ("chaplin.mp4", 0, 48),
        ]
    ):
        folder = root / "rawframes" / f"clip{k}"
        _write_frames(folder, shared_videos / name, count, (96, 72) if k != 2 else (72, 96))
        lines.append(f"rawframes/clip{k} {len(os.listdir(folder)) // 3} {label}")
    # 48 frames are fewer than one 4x16 clip spans, so every clip starts at frame 1: the RGB model needs
    # img_00001.jpg (removed here), the flow model x_/y_00001.jpg (kept)
    (root / "rawframes" / "clip3" / "img_00001.jpg").unlink()
    ann = root / "gym99_val_list_rawframes.txt"
    ann.write_text("\n".join(lines) + "\n")
    return root, ann


# ------------------------------------------------------------------------------------------- tests


def test_verify_video_list_end_to_end(tmp_path: Path, video_data: tuple[Path, Path]) -> None:
    root, ann = video_data
    entry = _shrunk("slowonly_r50_4x16x1_k400_video", f"test_k400_video_{uuid.uuid4().hex[:6]}")
    ckpt = write_upstream_checkpoint(tmp_path / "ckpt", entry, seed=1)
    printed: list[str] = []
    out = tmp_path / "out"
    result = verify(
        entry.name,
        root,
        ann,
        checkpoint=ckpt,
        out=out,
        num_workers=1,
        batch_views=12,
        source_format="video",
        device="cpu",
        progress=False,
        print_fn=printed.append,
    )

    assert result.num_listed == 7 and result.num_evaluated == 4 and result.num_failed == 3
    failed = dict(result.failed)
    assert set(failed) == {"videos/missing.mp4", "videos/empty.mp4", "videos/truncated.mp4"}
    assert all(reason for reason in failed.values())

    # the saved scores: annotation order, probabilities, and the reported numbers recomputed from them
    saved = read_scores(out / "scores.npz")
    assert saved.ids.tolist() == [f"videos/{n}" for n in GOOD_VIDEOS]
    assert saved.labels.tolist() == list(GOOD_VIDEOS.values())
    assert saved.scores.shape == (4, 400)
    np.testing.assert_allclose(saved.scores.sum(axis=1), 1.0, atol=1e-5)
    independent = _independent_metrics(saved.scores, saved.labels)
    for key, value in independent.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-9)

    # each video's probabilities equal the model run on that video's views alone
    model = create_model(entry.name, checkpoint_path=ckpt)
    pipeline = TestPipeline(entry.protocol)
    for k, name in enumerate(GOOD_VIDEOS):
        alone = _model_probs(model, pipeline(root / "videos" / name))
        np.testing.assert_allclose(saved.scores[k], alone, rtol=0, atol=2e-6)

    # results.json and the printed table
    report = json.loads((out / "results.json").read_text())
    assert report["measured"] == pytest.approx(result.metrics)
    assert report["reported"]["top1"] == 72.9
    assert report["delta"]["top1"] == pytest.approx(result.metrics["top1"] - 72.9)
    assert report["checkpoint"]["sha256"].startswith(ckpt.stem.rsplit("-", 1)[1])
    assert report["videos"]["failed"] == 3 and len(report["videos"]["failed_videos"]) == 3
    assert report["protocol"]["num_clips"] == 2
    assert report["verdict"] == "failed"  # random weights
    assert exit_status(result) == 1
    text = printed[-1]
    assert "top-1 accuracy" in text and "72.90" in text and "7 listed, 4 evaluated, 3 failed" in text
    assert "videos/missing.mp4" in text

    # uint8 views normalised after the transfer (the CUDA path) give the same probabilities
    on_device = verify(
        entry.name,
        root,
        ann,
        checkpoint=ckpt,
        out=tmp_path / "raw",
        num_workers=0,
        batch_views=12,
        source_format="video",
        device="cpu",
        progress=False,
        print_fn=None,
        normalize_on_device=True,
        limit=3,
    )
    np.testing.assert_array_equal(on_device.table.scores, saved.scores[:2])

    # a rerun resumes everything and gives the same numbers; --strict stops at the first bad file
    again = verify(
        entry.name,
        root,
        ann,
        checkpoint=ckpt,
        out=out,
        num_workers=0,
        source_format="video",
        device="cpu",
        progress=False,
        print_fn=None,
    )
    assert again.num_resumed == 7 and again.metrics == result.metrics
    with pytest.raises(BadInputError, match="videos/missing.mp4"):
        verify(
            entry.name,
            root,
            ann,
            checkpoint=ckpt,
            out=tmp_path / "strict",
            num_workers=0,
            source_format="video",
            device="cpu",
            strict=True,
            progress=False,
            print_fn=None,
        )


def test_verify_gym99_fusion_on_rawframes(tmp_path: Path, frame_data: tuple[Path, Path]) -> None:
    root, ann = frame_data
    tag = uuid.uuid4().hex[:6]
    rgb = _shrunk("slowonly_r50_4x16x1_gym99", f"test_gym99_rgb_{tag}")
    flow = _shrunk("slowonly_r50_4x16x1_gym99_flow", f"test_gym99_flow_{tag}", num_clips=1)
    fusion = register_model_entry(
        dataclasses.replace(
            get_model_info("slowonly_r50_4x16x1_gym99_fusion"),
            name=f"test_gym99_fusion_{tag}",
            aliases=(),
            members=(rgb.name, flow.name),
        )
    )
    ckpts = [write_upstream_checkpoint(tmp_path / "ckpt", e, seed=s) for e, s in ((rgb, 2), (flow, 3))]
    out = tmp_path / "out"
    result = verify(
        fusion.name,
        root,
        ann,
        checkpoint=ckpts,
        out=out,
        num_workers=0,
        batch_views=12,
        source_format="rawframes",
        device="cpu",
        progress=False,
        print_fn=None,
    )

    rgb_scores = read_scores(out / rgb.name)
    flow_scores = read_scores(out / flow.name)
    assert (out / rgb.name / "results.json").exists() and (out / flow.name / "results.json").exists()
    assert flow_scores.ids.tolist() == [f"rawframes/clip{k}" for k in range(4)]
    assert rgb_scores.ids.tolist() == [f"rawframes/clip{k}" for k in range(3)]
    assert [i for i, _ in rgb_scores.failed] == ["rawframes/clip3"] and "img_00001.jpg" in rgb_scores.failed[0][1]
    fused = read_scores(out / "scores.npz")
    common = [i for i in flow_scores.ids.tolist() if i in set(rgb_scores.ids.tolist())]
    assert fused.ids.tolist() == common
    a = rgb_scores.scores[[rgb_scores.ids.tolist().index(i) for i in common]]
    b = flow_scores.scores[[flow_scores.ids.tolist().index(i) for i in common]]
    np.testing.assert_array_equal(fused.scores, (a + b) / np.float32(2))
    independent = _independent_metrics(fused.scores, fused.labels)
    for key, value in independent.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-9)
    report = result.report
    assert report["model"] == fusion.name and report["reported"]["top1"] == 83.7
    assert set(report["members"]) == {rgb.name, flow.name}
    assert report["videos"]["evaluated"] == 3 and report["videos"]["failed"] == 1
    assert report["videos"]["failed_videos"][0]["id"] == "rawframes/clip3"
    assert report["videos"]["failed_videos"][0]["reason"].startswith(rgb.name)
    assert json.loads((out / "results.json").read_text())["verdict"] == report["verdict"]


@pytest.mark.slow
def test_verify_full_protocol_on_one_real_video(tmp_path: Path, shared_videos: Path) -> None:
    """An unmodified entry: 10 clips x 3 crops of 256 px through a real R50 (about 30 s on 2 CPU cores)."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "archery.avi").symlink_to(shared_videos / "archery.avi")
    ann = tmp_path / "list.txt"
    ann.write_text("videos/archery.avi 5\n")
    name = "slowonly_r50_4x16x1_k400_video"
    ckpt = write_upstream_checkpoint(tmp_path / "ckpt", name, seed=4)
    printed: list[str] = []
    result = verify(
        name,
        tmp_path,
        ann,
        checkpoint=ckpt,
        out=tmp_path / "out",
        num_workers=1,
        batch_views=30,
        device="cpu",
        progress=False,
        print_fn=printed.append,
    )
    assert result.num_evaluated == 1 and result.num_failed == 0
    assert result.settings["videos_per_batch"] == 1  # 30 views per video
    saved = read_scores(tmp_path / "out")
    assert saved.scores.shape == (1, 400) and abs(float(saved.scores.sum()) - 1.0) < 1e-5
    assert result.metrics == _independent_metrics(saved.scores, saved.labels)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["protocol"]["num_clips"] == 10 and report["protocol"]["crop"] == "three"
    assert report["reported"] == {"top1": 72.9, "top5": 90.82, "mean_class_accuracy": None}
    assert report["verdict"] == "failed" and "72.90" in printed[0]


def test_unknown_source_format_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source format 'folder'; choose one of auto, video, rawframes"):
        verify("slowonly_r50_4x16x1_k400", tmp_path, tmp_path / "missing.txt", source_format="folder", out=tmp_path)
