"""Train-time data pipeline: ``slowonly_zoo.training.transforms`` against mmaction2 0.24.1's own train ops.

Bit-identity under the same draws: this module's ops take every random number from a ``numpy.random.Generator``;
the tests record each draw (kind, bounds, size, value) and replay the records into 0.24.1's ops in the 0.x
subprocess, whose ``np.random.randint`` / ``np.random.uniform`` / ``np.random.rand`` / ``random.randint`` are
replaced by the replay. The replay also checks that 0.24.1 asks for exactly the same kind of draw with the same
bounds and size, in the same order, and that it consumes every recorded draw. Compared exactly: ``SampleFrames``
(train mode) frame indices over every branch, ``RandomResizedCrop`` boxes, and whole train pipelines
(``cfg.train_pipeline`` of the 0.x recipe configs: decode, ``Resize``, ``RandomResizedCrop``, ``Resize``,
``Flip``, ``Normalize``, ``FormatShape``) on real frames, as float32 tensors and labels.

Distributions under independent streams: 10k crop boxes from ``random_resized_crop_box`` (numpy ``Generator``) and
10k from 0.24.1's ``get_crop_bbox`` (its own global numpy + Python RNGs): the two-sample Kolmogorov-Smirnov test
must not reject (p > 1e-3) for crop area, aspect ratio and the x / y offsets, and must reject (p < 1e-3) for a
wrong area range (0.2, 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from reference0x import CONFIGS_0X, run_reference_0x
from scipy.stats import ks_2samp
from support import VIDEOS, require_shared

from slowonly_zoo.data import VideoFile, read_frames
from slowonly_zoo.training import TrainPipeline, random_resized_crop_box, train_clip_indices, val_pipeline
from slowonly_zoo.training.transforms import TrainTransformError


class RecordingRng:
    """A ``numpy.random.Generator`` that records every draw (what the replay in the 0.x subprocess serves)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self.draws: list[dict[str, Any]] = []

    @staticmethod
    def _size(size: Any) -> tuple[int, ...] | None:
        if size is None:
            return None
        return tuple(int(s) for s in size) if isinstance(size, tuple | list) else (int(size),)

    def _record(self, kind: str, low: Any, high: Any, size: Any, value: Any) -> Any:
        self.draws.append(dict(kind=kind, low=low, high=high, size=self._size(size), value=value))
        return value

    def integers(self, low: int, high: int, size: Any = None) -> Any:
        value = self._rng.integers(low, high, size=size)
        value = int(value) if size is None else np.asarray(value, dtype=np.int64)
        return self._record("integers", int(low), int(high), size, value)

    def uniform(self, low: float, high: float, size: Any = None) -> Any:
        value = self._rng.uniform(low, high, size=size)
        return self._record("uniform", float(low), float(high), size, value)

    def random(self) -> float:
        return self._record("random", None, None, None, float(self._rng.random()))


_REPLAY = """
import random

import numpy as np
from mmcv import Config
from mmaction.datasets.pipelines import Compose, RandomResizedCrop, SampleFrames


def native_crop_boxes(shape, count, seed):
    # 0.24.1's own RNG streams (global numpy + Python random), before the replay is installed
    np.random.seed(seed)
    random.seed(seed)
    return np.array([RandomResizedCrop.get_crop_bbox(shape, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(count)])


if "native" in inputs:
    outputs["native"] = native_crop_boxes(*inputs["native"])


class Replay:
    def __init__(self):
        self.draws, self.i = [], 0

    def load(self, draws):
        self.draws, self.i = list(draws), 0

    def take(self, kind, low, high, size):
        assert self.i < len(self.draws), f"0.24.1 drew more than recorded: {kind}({low}, {high}, {size})"
        d = self.draws[self.i]
        self.i += 1
        got, want = (kind, low, high, size), (d["kind"], d["low"], d["high"], d["size"])
        assert got == want, f"draw {self.i - 1}: 0.24.1 asked for {got}, the zoo drew {want}"
        return d["value"]

    def done(self):
        assert self.i == len(self.draws), f"0.24.1 used {self.i} of {len(self.draws)} recorded draws"


REPLAY = Replay()


def _size(size):
    if size is None or size == ():
        return None
    return tuple(int(s) for s in size) if isinstance(size, (tuple, list)) else (int(size),)


def np_randint(low, high=None, size=None, dtype=int):
    if high is None:
        low, high = 0, low
    return REPLAY.take("integers", int(low), int(high), _size(size))


def np_uniform(low=0.0, high=1.0, size=None):
    return REPLAY.take("uniform", float(low), float(high), _size(size))


def np_rand(*shape):
    return REPLAY.take("random", None, None, _size(shape))


def py_randint(a, b):
    return REPLAY.take("integers", int(a), int(b) + 1, None)


np.random.randint, np.random.uniform, np.random.rand, random.randint = np_randint, np_uniform, np_rand, py_randint

outputs["sampling"] = []
for case in inputs.get("sampling", []):
    sampler = SampleFrames(case["clip_len"], case["frame_interval"], case["num_clips"])
    REPLAY.load(case["draws"])
    out = sampler(dict(total_frames=case["total_frames"], start_index=case["start_index"]))
    REPLAY.done()
    outputs["sampling"].append(out["frame_inds"])

outputs["boxes"] = []
for case in inputs.get("boxes", []):
    REPLAY.load(case["draws"])
    box = RandomResizedCrop.get_crop_bbox(case["shape"], case["area_range"], case["aspect_range"])
    REPLAY.done()
    outputs["boxes"].append(np.array(box))

outputs["pipelines"] = {}
for name, case in inputs.get("pipelines", {}).items():
    steps = [dict(step) for step in Config.fromfile(case["config"]).train_pipeline if step["type"] != "DecordInit"]
    for step in steps:
        if step["type"] == "DecordDecode":  # videos: the same frames, decoded once and stored losslessly
            step["type"] = "RawFrameDecode"
    pipeline = Compose(steps)
    runs = []
    for run in case["runs"]:
        REPLAY.load(run["draws"])
        out = pipeline(dict(
            frame_dir=case["frame_dir"], total_frames=case["total_frames"], label=run["label"],
            start_index=case["start_index"], filename_tmpl=case["filename_tmpl"], modality=case["modality"],
        ))
        REPLAY.done()
        names = [type(t).__name__ for t in pipeline.transforms]
        runs.append(dict(imgs=out["imgs"], label=int(out["label"]), pipeline=names))
    outputs["pipelines"][name] = runs
    if case.get("val"):  # the validation pipeline: no randomness
        steps = [dict(step) for step in Config.fromfile(case["config"]).val_pipeline if step["type"] != "DecordInit"]
        for step in steps:
            if step["type"] == "DecordDecode":
                step["type"] = "RawFrameDecode"
        out = Compose(steps)(dict(
            frame_dir=case["frame_dir"], total_frames=case["total_frames"], label=0,
            start_index=case["start_index"], filename_tmpl=case["filename_tmpl"], modality=case["modality"],
        ))
        outputs.setdefault("val", {})[name] = out["imgs"]
"""


# -- SampleFrames ---------------------------------------------------------------------------------------------------

SAMPLING = [(8, 8, 1), (4, 16, 1), (8, 4, 1), (8, 2, 1), (4, 4, 3), (2, 3, 5), (1, 1, 4)]
"""(clip_len, frame_interval, num_clips): the recipes' samplings and multi-clip ones reaching every branch."""


def sampling_cases() -> list[dict[str, Any]]:
    cases = []
    for k, (clip_len, interval, num_clips) in enumerate(SAMPLING):
        for total in [*range(1, 80), 150, 281]:
            for seed in range(2):
                rng = RecordingRng(1000 * k + 10 * total + seed)
                start = seed  # 0 (videos) and 1 (frame folders)
                inds = train_clip_indices(total, clip_len, interval, num_clips, rng, start_index=start)
                cases.append(
                    dict(
                        clip_len=clip_len,
                        frame_interval=interval,
                        num_clips=num_clips,
                        total_frames=total,
                        start_index=start,
                        draws=rng.draws,
                        ours=inds,
                    )
                )
    return cases


# -- RandomResizedCrop -------------------------------------------------------------------------------------------

CROP_SHAPES = [(256, 340), (256, 455), (341, 256), (128, 171), (100, 176), (224, 224), (12, 300), (1, 1)]
CROP_RANGES = [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.5, 0.9), (0.5, 2.0))]


def box_cases() -> list[dict[str, Any]]:
    cases = []
    for k, shape in enumerate(CROP_SHAPES):
        for area_range, aspect_range in CROP_RANGES:
            for seed in range(60):
                rng = RecordingRng(100 * k + seed)
                x, y, w, h = random_resized_crop_box(shape[0], shape[1], rng, area_range, aspect_range)
                cases.append(
                    dict(
                        shape=shape,
                        area_range=area_range,
                        aspect_range=aspect_range,
                        draws=rng.draws,
                        ours=np.array([x, y, x + w, y + h]),
                    )
                )
    return cases


# -- whole pipelines ---------------------------------------------------------------------------------------------


def write_folder(folder: Path, frames: np.ndarray, tmpl: str, start: int, flow: bool = False) -> Path:
    """Frames as image files named like a frame folder (flow: the R and G channels as x / y gray JPEGs)."""
    folder.mkdir(parents=True)
    for k, frame in enumerate(frames):
        if flow:
            for channel, axis in ((0, "x"), (1, "y")):
                Image.fromarray(frame[..., channel]).save(folder / tmpl.format(axis, k + start), quality=90)
        elif tmpl.endswith(".png"):
            Image.fromarray(frame).save(folder / tmpl.format(k + start), compress_level=1)
        else:
            Image.fromarray(frame).save(folder / tmpl.format(k + start), quality=90)
    return folder


RGB_MEAN, RGB_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
JESTER_FLIP = {0: 1, 1: 0, 6: 7, 7: 6}

PIPELINES: dict[str, dict[str, Any]] = {
    # name: 0.x config, source (video, frame count), folder layout, TrainPipeline arguments
    "k400_rgb_8x8x1": dict(
        config="slowonly_r50_8x8x1_256e_kinetics400_rgb",
        video="chaplin.mp4",
        frames=90,
        tmpl="img_{:05}.jpg",
        args=dict(clip_len=8, frame_interval=8, resize_short=256, out_size=224),
        val=dict(resize_short=256, crop_size=224),
    ),
    "k400_rgb_4x16x1_340x256": dict(
        config="data_benchmark/slowonly_r50_randomresizedcrop_340x256_4x16x1_256e_kinetics400_rgb",
        video="archery.avi",
        frames=70,
        tmpl="img_{:05}.jpg",
        args=dict(clip_len=4, frame_interval=16, resize_short=256, out_size=224),
    ),
    "k400_flow_4x16x1": dict(
        config="slowonly_r50_4x16x1_256e_kinetics400_flow",
        video="archery.avi",
        frames=70,
        tmpl="{}_{:05d}.jpg",
        args=dict(clip_len=4, frame_interval=16, resize_short=256, out_size=224, modality="flow"),
        val=dict(resize_short=256, crop_size=256, modality="flow"),  # this 0.x config validates on CenterCrop(256)
    ),
    "jester_8x4x1": dict(
        config="slowonly_imagenet_pretrained_r50_8x8x1_64e_jester_rgb",
        video="cleaning_pool_32f.mp4",
        frames=32,
        tmpl="{:05}.jpg",
        args=dict(clip_len=8, frame_interval=4, resize_short=None, out_size=224, flip_label_map=JESTER_FLIP),
    ),
    "sthv1_8x4x1": dict(
        config="slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb",
        video="archery.avi",
        frames=40,
        tmpl="{:05}.jpg",
        args=dict(clip_len=8, frame_interval=4, resize_short=128, out_size=112),
        val=dict(resize_short=128, crop_size=112),
    ),
    "k600_video_8x8x1": dict(
        config="slowonly_r50_video_8x8x1_256e_kinetics600_rgb",
        video="arm_wrestling.mp4",
        frames=None,  # the video file itself; 0.x reads the same decoded frames from lossless PNGs
        tmpl="img_{:05}.png",
        args=dict(clip_len=8, frame_interval=8, resize_short=None, out_size=224),
    ),
}
RUNS_PER_PIPELINE = 4


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory) -> dict[str, Any]:
    """Our pipeline's outputs and draws per case, and the inputs the 0.x pipeline needs for the same runs."""
    root = tmp_path_factory.mktemp("train_frames")
    ours, theirs = {}, {}
    for k, (name, case) in enumerate(PIPELINES.items()):
        video = require_shared(VIDEOS / case["video"])
        flow = case["args"].get("modality") == "flow"
        if case["frames"] is None:  # a video: our decoder's frames, all of them, for the 0.x RawFrameDecode
            with VideoFile(video) as v:
                total = len(v)
            folder = write_folder(root / name, read_frames(video, np.arange(total)), case["tmpl"], 0)
            source, start = video, 0
        else:
            total = case["frames"]
            folder = write_folder(root / name, read_frames(video, np.arange(total)), case["tmpl"], 1, flow)
            source, start = folder, 1
        pipeline = TrainPipeline(**case["args"], filename_tmpl=case["tmpl"], start_index=1)
        runs, outs = [], []
        for run in range(RUNS_PER_PIPELINE):
            label = [0, 6, 3, 1][run]
            rng = RecordingRng(7000 + 100 * k + run)
            clip, new_label = pipeline(source, label, rng)
            runs.append(dict(draws=rng.draws, label=label))
            outs.append((clip, new_label))
        ours[name] = outs
        if "val" in case:
            val = val_pipeline(
                case["args"]["clip_len"], case["args"]["frame_interval"], filename_tmpl=case["tmpl"], **case["val"]
            )
            ours[f"val:{name}"] = val(source)
        theirs[name] = dict(
            val="val" in case,
            config=str(CONFIGS_0X / f"{case['config']}.py"),
            frame_dir=str(folder),
            total_frames=total,
            start_index=start,
            filename_tmpl=case["tmpl"],
            modality="Flow" if flow else "RGB",
            runs=runs,
        )
    return dict(ours=ours, inputs=theirs)


# -- the 0.x run (one subprocess for the module) -------------------------------------------------------------------

NATIVE = ((256, 340), 10_000, 0)
"""Shape, count and seed of the 0.x native crop-box draws for the distribution test."""


@pytest.fixture(scope="module")
def reference(pipeline_runs, tmp_path_factory) -> dict[str, Any]:
    samplings, boxes = sampling_cases(), box_cases()
    inputs = dict(
        native=NATIVE,
        sampling=[{k: v for k, v in c.items() if k != "ours"} for c in samplings],
        boxes=[{k: v for k, v in c.items() if k != "ours"} for c in boxes],
        pipelines=pipeline_runs["inputs"],
    )
    out = run_reference_0x(_REPLAY, tmp_path_factory.mktemp("transforms0x"), inputs)
    out["sampling_ours"] = [c["ours"] for c in samplings]
    out["sampling_cases"] = samplings
    out["boxes_ours"] = [c["ours"] for c in boxes]
    return out


def test_train_clip_indices_equal_sample_frames(reference):
    assert len(reference["sampling"]) == len(reference["sampling_ours"])
    for case, ours, theirs in zip(
        reference["sampling_cases"], reference["sampling_ours"], reference["sampling"], strict=True
    ):
        assert np.array_equal(ours, theirs), {k: case[k] for k in ("clip_len", "frame_interval", "num_clips")}
        assert ours.dtype == np.int64


def test_sampling_cases_reach_every_branch():
    """The compared cases include all four branches of ``_get_train_clips``."""
    branches = set()
    for clip_len, interval, num_clips in SAMPLING:
        for total in [*range(1, 80), 150, 281]:
            span = clip_len * interval
            avg = (total - span + 1) // num_clips
            branches.add(
                "avg" if avg > 0 else "sorted" if total > max(num_clips, span) else "around" if avg == 0 else "zeros"
            )
    assert branches == {"avg", "sorted", "around", "zeros"}


def test_crop_boxes_equal_random_resized_crop(reference):
    ours, theirs = reference["boxes_ours"], reference["boxes"]
    assert len(ours) == len(theirs) == len(CROP_SHAPES) * len(CROP_RANGES) * 60
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert np.array_equal(a, b), k
    shapes = [shape for shape in CROP_SHAPES for _ in range(len(CROP_RANGES) * 60)]
    fallbacks = sum(
        1
        for box, (h, w) in zip(ours, shapes, strict=True)
        if box[2] - box[0] == box[3] - box[1] == min(h, w)
        and (box[0], box[1]) == ((w - min(h, w)) // 2, (h - min(h, w)) // 2)
    )
    assert 0 < fallbacks < len(ours)  # the no-candidate-fits fallback is among the compared cases


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_train_pipeline_equals_0x_pipeline(pipeline_runs, reference, name):
    ours = pipeline_runs["ours"][name]
    theirs = reference["pipelines"][name]
    case = PIPELINES[name]
    steps = theirs[0]["pipeline"]
    assert steps.count("Resize") == (2 if case["args"]["resize_short"] else 1)  # the config agrees on the resize
    for (clip, label), ref in zip(ours, theirs, strict=True):
        imgs = ref["imgs"]
        assert imgs.shape[0] == 1 and clip.shape == imgs.shape[1:]
        assert clip.dtype == imgs.dtype == torch.float32
        assert torch.equal(clip, imgs[0])
        assert label == ref["label"]
    out = case["args"]["out_size"]
    channels = 2 if case["args"].get("modality") == "flow" else 3
    assert ours[0][0].shape == (channels, case["args"]["clip_len"], out, out)


@pytest.mark.parametrize("name", sorted(name for name, case in PIPELINES.items() if "val" in case))
def test_val_pipeline_equals_0x_val_pipeline(pipeline_runs, reference, name):
    """val_pipeline (the test pipeline with one clip and a centre crop) equals the recipe config's val_pipeline."""
    ours, theirs = pipeline_runs["ours"][f"val:{name}"], reference["val"][name]
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs)


def test_pipeline_runs_flip_and_remap_labels(pipeline_runs):
    """Across the runs some clips are flipped and some not, and Jester's flipped labels are remapped."""
    flipped = [run["draws"][-1]["value"] < 0.5 for case in pipeline_runs["inputs"].values() for run in case["runs"]]
    assert any(flipped) and not all(flipped)
    jester = pipeline_runs["inputs"]["jester_8x4x1"]["runs"]
    remapped = [
        (run["label"], new) for run, (_, new) in zip(jester, pipeline_runs["ours"]["jester_8x4x1"], strict=True)
    ]
    expected = [
        JESTER_FLIP.get(old, old) if run["draws"][-1]["value"] < 0.5 else old
        for run, (old, _) in zip(jester, remapped, strict=True)
    ]
    assert [new for _, new in remapped] == expected
    assert any(old != new for old, new in remapped)  # at least one run flipped a mapped label


# -- distributions -------------------------------------------------------------------------------------------------


def crop_statistics(boxes: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Area fraction, aspect ratio and relative x / y offsets of (x1, y1, x2, y2) boxes."""
    h, w = shape
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    free_x, free_y = w - bw, h - bh
    return dict(
        area=bw * bh / (h * w),
        aspect=bw / bh,
        x=boxes[free_x > 0, 0] / free_x[free_x > 0],
        y=boxes[free_y > 0, 1] / free_y[free_y > 0],
    )


def zoo_boxes(shape: tuple[int, int], count: int, seed: int, area_range=(0.08, 1.0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        x, y, w, h = random_resized_crop_box(shape[0], shape[1], rng, area_range)
        boxes.append((x, y, x + w, y + h))
    return np.array(boxes)


P_MIN = 1e-3


def test_crop_distributions_match_0x_streams(reference):
    shape, count, _ = NATIVE
    theirs = crop_statistics(reference["native"], shape)
    ours = crop_statistics(zoo_boxes(shape, count, seed=12345), shape)
    for stat in ("area", "aspect", "x", "y"):
        assert len(ours[stat]) > 0.5 * count and len(theirs[stat]) > 0.5 * count
        p = ks_2samp(ours[stat], theirs[stat]).pvalue
        assert p > P_MIN, (stat, p)


def test_ks_rejects_a_wrong_area_range(reference):
    """The same test does fail on a plausible mistake: area (0.2, 1) instead of (0.08, 1)."""
    shape, count, _ = NATIVE
    theirs = crop_statistics(reference["native"], shape)
    wrong = crop_statistics(zoo_boxes(shape, count, seed=12345, area_range=(0.2, 1.0)), shape)
    assert ks_2samp(wrong["area"], theirs["area"]).pvalue < P_MIN


def test_bad_transform_settings_are_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(TrainTransformError, match="area_range"):
        random_resized_crop_box(10, 10, rng, area_range=(0.0, 1.0))
    with pytest.raises(TrainTransformError, match="no frames"):
        train_clip_indices(0, 8, 8, 1, rng)
    with pytest.raises(TrainTransformError, match="modality"):
        TrainPipeline(8, 8, modality="depth")  # type: ignore[arg-type]
    with pytest.raises(TrainTransformError, match="flip_ratio"):
        TrainPipeline(8, 8, flip_ratio=1.5)
