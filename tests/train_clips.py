"""Tiny generated training data for the trainer tests: real video files (PyAV, MPEG-4) of two classes that differ
in their motion (a bright bar sweeping left to right vs top to bottom over a dark textured background),
annotation lists in the upstream formats, and a small recipe of a real zoo entry for 32x32 inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np

from slowonly_zoo.index import get_model_info
from slowonly_zoo.index.recipes import CropRanges, TrainRecipe, TrainSampling, ValPipeline
from slowonly_zoo.training import TrainOptions

ENTRY = "slowonly_r50_8x8x1_k400"
SIZE = 32
FRAMES = 8


def motion_frames(label: int, seed: int, size: int = SIZE, frames: int = FRAMES) -> np.ndarray:
    """(frames, size, size, 3) uint8: class 0 sweeps a vertical bar left to right, class 1 a horizontal bar top to
    bottom, over a dark noise background of the clip's own."""
    rng = np.random.default_rng(seed)
    background = rng.integers(10, 50, size=(size, size, 3), dtype=np.uint8)
    out = np.repeat(background[None], frames, axis=0)
    width = size // 5
    for t in range(frames):
        pos = round(t * (size - width) / (frames - 1))
        if label == 0:
            out[t, :, pos : pos + width] = (235, 225, 210)
        else:
            out[t, pos : pos + width, :] = (235, 225, 210)
    return out


def write_video(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Write RGB frames as an MPEG-4 video (every frame a keyframe, high quality)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1", "g": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_clips(root: Path, per_class: int = 4) -> tuple[Path, list[tuple[str, int]]]:
    """``per_class`` clips of each of the 2 classes under ``root`` and a video list ``root/train.txt``."""
    rows = []
    for label in (0, 1):
        for k in range(per_class):
            name = f"class{label}/clip{k}.mp4"
            write_video(root / name, motion_frames(label, seed=10 * label + k))
            rows.append((name, label))
    ann = root / "train.txt"
    ann.write_text("".join(f"{name} {label}\n" for name, label in rows))
    return ann, rows


def tiny_recipe(**changes: object) -> TrainRecipe:
    """The 8x8x1 K400 entry's recipe, shrunk to 4-frame 32x32 clips (no resize, centre 32 crop for val)."""
    base = get_model_info(ENTRY).train_recipe
    assert base is not None
    recipe = dataclasses.replace(
        base,
        videos_per_gpu=4,
        sampling=TrainSampling(clip_len=4, frame_interval=1),
        resize_short=None,
        out_size=SIZE,
        crop=CropRanges(area=(0.6, 1.0)),
        val=ValPipeline(resize_short=None, crop_size=SIZE),
        epochs=3,
        val_interval=1,
        save_interval=1,
        log_interval=1,
    )
    return dataclasses.replace(recipe, **changes) if changes else recipe


def tiny_options(data_root: Path, work_dir: Path, **changes: object) -> TrainOptions:
    """A one-epoch CPU run of :data:`ENTRY` from scratch on ``data_root`` with :func:`tiny_recipe` and no
    DataLoader workers; ``changes`` replace any :class:`TrainOptions` field."""
    defaults: dict[str, object] = dict(name=ENTRY, init="scratch", epochs=1, num_workers=0, recipe=tiny_recipe())
    return TrainOptions(data_root=data_root, work_dir=work_dir, **{**defaults, **changes})  # type: ignore[arg-type]
