"""``slowonly_zoo.timeline`` (``predict --timeline``) on generated clips whose content changes halfway: exact window
frames and timestamps (25 fps and 30000/1001 fps), the bounded frame buffer, the same numbers as the test
pipeline's sliding windows, the JSON / CSV / PNG files, and the command line end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from support import REPO_ROOT
from upstream_checkpoints import write_upstream_checkpoint

from slowonly_zoo import cli, create_model
from slowonly_zoo.errors import InferenceError, UnsupportedProtocolError
from slowonly_zoo.features import sliding_window_indices, sliding_windows
from slowonly_zoo.index import get_model_info
from slowonly_zoo.inference import inference_protocol, input_pipeline
from slowonly_zoo.runtime import forward_views
from slowonly_zoo.timeline import (
    CSV_COLUMNS,
    WindowSchedule,
    plot,
    read_windows,
    timeline,
    write_csv,
    write_json,
)

MODEL = "slowonly_r50_4x16x1_k400_video"  # clip 4 x 16: a window spans 49 frames, default stride 64
SPAN = 49


def _figures():
    """``tools/readme_figures.py`` (its clip generator), loaded from its file: tools/ is not a package."""
    spec = importlib.util.spec_from_file_location(
        "readme_figures_under_test", REPO_ROOT / "tools" / "readme_figures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


two_motion_clip = _figures().two_motion_clip


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(MODEL, pretrained=False).eval()


@pytest.fixture(scope="module")
def clip25(tmp_path_factory) -> Path:
    """25 fps, 10 s (250 frames), 64x48: the bar for 125 frames, then the blob."""
    return two_motion_clip(tmp_path_factory.mktemp("timeline") / "two_motions.mp4", fps=Fraction(25), seconds=10)


@pytest.fixture(scope="module")
def result25(model, clip25):
    return timeline(model, clip25, topk=3, device="cpu", progress=False)


def _pipeline_probs(model, video: Path, stride: int) -> np.ndarray:
    """The same windows through the test pipeline's frame plan (what ``extract --clip-stride`` runs)."""
    entry = get_model_info(MODEL)
    protocol = inference_protocol(entry, clips=1)
    views = input_pipeline(protocol, entry, video, sliding_windows(4, 16, stride))(video)
    return torch.softmax(forward_views(model, views, torch.device("cpu"), 1), dim=-1).numpy()


# ------------------------------------------------------------------------------------------------ frame buffer


@pytest.mark.parametrize(("clip_len", "interval", "stride"), [(4, 16, 64), (4, 16, 16), (8, 8, 5), (4, 16, 100)])
def test_schedule_keeps_only_sampled_frames_of_open_windows(clip_len, interval, stride):
    """Streaming 1000 frames through the schedule completes exactly the sliding windows of ``extract``, with each
    window's own frames, while holding at most the frames of the windows still open (never a span)."""
    schedule = WindowSchedule(clip_len, interval, stride)
    span = (clip_len - 1) * interval + 1
    done: list[list[int]] = []
    for position in range(1000):
        if schedule.needed(position):
            schedule.add(position, np.full(1, position))
        start = schedule.completed(position)
        if start is not None:
            done.append([int(f[0]) for f in schedule.clip(start)])
        schedule.release(position)
    expected = sliding_window_indices(1000, clip_len, interval, stride)
    assert done == expected.tolist()
    open_windows = math.ceil(span / stride)
    assert schedule.peak <= min(span, clip_len * open_windows)
    if stride >= span:
        assert schedule.peak == clip_len  # one window's frames at a time


def test_schedule_refuses_a_zero_stride():
    with pytest.raises(InferenceError, match="--window-stride"):
        WindowSchedule(4, 16, 0)


# ------------------------------------------------------------------------------------------------ timeline


def test_windows_and_timestamps_at_25_fps(result25, model, clip25):
    """Default stride = clip_len x interval = 64: windows at frames 0, 64, 128, 192 (192 + 49 <= 250), times =
    frame / 25 exactly; every row a probability vector."""
    r = result25
    assert (r.num_frames, r.fps, r.clip_len, r.frame_interval, r.window_stride) == (250, 25.0, 4, 16, 64)
    assert [w.start_frame for w in r.windows] == [0, 64, 128, 192]
    assert [w.end_frame for w in r.windows] == [49, 113, 177, 241]
    assert [w.index for w in r.windows] == [0, 1, 2, 3]
    for w in r.windows:
        assert w.start == pytest.approx(w.start_frame / 25, abs=1e-9)
        assert w.end == pytest.approx(w.end_frame / 25, abs=1e-9)
        assert len(w.topk) == 3
        assert [c.prob for c in w.topk] == sorted((c.prob for c in w.topk), reverse=True)
        assert w.topk[0].index == int(np.argmax(r.probs[w.index]))
        assert w.topk[0].label == r.class_names[w.topk[0].index]
    assert r.probs.shape == (4, 400) and len(r.class_names) == 400
    np.testing.assert_allclose(r.probs.sum(axis=1), 1.0, atol=1e-5)
    assert r.peak_buffered_frames == 4  # only the sampled frames of one window were ever held


@pytest.mark.slow
def test_windows_are_the_test_pipelines_sliding_windows(result25, model, clip25):
    """Each window is what the test pipeline makes of that clip (``extract --clip-stride``'s frame plan): the same
    frames, resize, crop and normalisation, so the same probabilities."""
    np.testing.assert_allclose(result25.probs, _pipeline_probs(model, clip25, 64), rtol=1e-4, atol=1e-6)


def test_ntsc_time_base_and_a_window_ending_with_the_video(model, tmp_path):
    """30000/1001 fps, 90 frames, stride 41: windows at 0 and 41; the second ends with the video, so its end is
    the last frame's timestamp plus one frame (90 x 1001/30000 s)."""
    video = two_motion_clip(tmp_path / "ntsc.mp4", fps=Fraction(30000, 1001), seconds=3.003)
    with av.open(str(video)) as container:
        time_base = container.streams.video[0].time_base
    assert time_base is not None and time_base != Fraction(1001, 30000)  # timestamps count in a finer unit
    r = timeline(model, video, window_stride=41, topk=1, device="cpu", progress=False)
    assert r.num_frames == 90 and r.fps == pytest.approx(30000 / 1001)
    assert [(w.start_frame, w.end_frame) for w in r.windows] == [(0, 49), (41, 90)]
    frame = Fraction(1001, 30000)
    assert [w.start for w in r.windows] == [0.0, float(41 * frame)]
    assert [w.end for w in r.windows] == [float(49 * frame), float(90 * frame)]


def test_a_video_shorter_than_one_span_gives_one_wrapped_window(model, tmp_path):
    """30 frames < 49: one window over the whole video whose indices wrap, as the test pipeline's sliding windows
    (and upstream's sampler) loop short videos."""
    video = two_motion_clip(tmp_path / "short.mp4", fps=Fraction(25), seconds=1.2)
    r = timeline(model, video, device="cpu", progress=False)
    assert [(w.start_frame, w.end_frame, w.start, w.end) for w in r.windows] == [(0, 30, 0.0, 1.2)]
    np.testing.assert_allclose(r.probs, _pipeline_probs(model, video, 64), rtol=1e-4, atol=1e-6)


def test_refuses_frame_folders_and_fair_protocols(tmp_path, clip25):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "img_00001.jpg")
    with pytest.raises(InferenceError, match="frame folder"):
        timeline(MODEL, folder, progress=False)
    with pytest.raises(UnsupportedProtocolError, match="slow_r50_4x16_k400_pyslowfast"):
        timeline("slow_r50_4x16_k400_pyslowfast", clip25, progress=False)  # refused before any weights are fetched
    with pytest.raises(InferenceError, match="--window-stride"):
        timeline(MODEL, clip25, window_stride=0, progress=False)


# ------------------------------------------------------------------------------------------------ files


def test_json_csv_round_trip_and_png_size(result25, tmp_path):
    windows = read_windows(write_json(result25, tmp_path / "t.json"))
    assert windows == result25.windows
    data = json.loads((tmp_path / "t.json").read_text())
    assert (data["model"], data["num_frames"], data["window_stride"]) == (MODEL, 250, 64)

    with open(write_csv(result25, tmp_path / "t.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 4 * 3  # one row per window and rank
    for row in rows:
        w = result25.windows[int(row["window"])]
        c = w.topk[int(row["rank"]) - 1]
        assert (int(row["start_frame"]), int(row["end_frame"]), int(row["index"])) == (
            w.start_frame,
            w.end_frame,
            c.index,
        )
        assert (float(row["start"]), float(row["end"])) == pytest.approx((w.start, w.end), abs=1e-6)
        assert row["label"] == c.label and float(row["prob"]) == pytest.approx(c.prob, abs=1e-6)

    png = plot(result25, tmp_path / "t.png", top=3, size=(6.4, 2.5), dpi=50)
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    assert (int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")) == (320, 125)
    with Image.open(png) as image:
        image.load()  # decodes the whole file: not truncated
        assert image.size == (320, 125)
        assert len(image.getcolors(1 << 16) or []) > 10  # lines and text were drawn, not a blank canvas
    top = result25.top_classes(3)
    assert len(set(top)) == 3 and top[0] == int(np.argmax(result25.probs.max(axis=0)))


# ------------------------------------------------------------------------------------------------ command line


def test_cli_timeline_end_to_end(tmp_path, clip25, capsys):
    ckpt = write_upstream_checkpoint(tmp_path / "ckpt", MODEL, seed=3)
    out = tmp_path / "out"
    args = ["predict", MODEL, str(clip25), "--checkpoint", str(ckpt), "--device", "cpu", "--timeline"]
    args += ["--window-stride", "100", "--topk", "2", "--out", str(out)]
    overlay = importlib.util.find_spec("slowonly_zoo.overlay") is not None
    if overlay:
        args += ["--out-video", str(tmp_path / "labelled.mp4")]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "3 windows of 4x16 frames every 100, 250 frames" in printed  # starts 0, 100, 200 (200 + 49 <= 250)
    assert re.search(r"^ +2 +8\.00 - +9\.96 s +[01]\.\d{4}  \S", printed, re.MULTILINE)  # window 2: frames 200-249
    windows = read_windows(out / "two_motions.timeline.json")
    assert [(w.start_frame, w.end_frame) for w in windows] == [(0, 49), (100, 149), (200, 249)]
    assert (out / "two_motions.timeline.csv").read_text().count("\n") == 1 + 3 * 2
    with Image.open(out / "two_motions.timeline.png") as image:
        assert image.size == (800, 300)  # plot()'s default 8 x 3 inches at 100 dpi
    if overlay:
        with av.open(str(tmp_path / "labelled.mp4")) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == 250


def test_cli_timeline_option_errors(clip25, capsys):
    base = ["predict", MODEL, str(clip25)]
    assert cli.main([*base, "--window-stride", "10"]) == 1
    assert "--window-stride needs --timeline" in capsys.readouterr().err
    assert cli.main([*base, "--timeline", "--clips", "2"]) == 1
    assert "leave out --clips" in capsys.readouterr().err
    assert cli.main([*base, "--timeline", "--timeline-out", "x", "--out", "y"]) == 1
    assert cli.main([*base, "--timeline", "--audio"]) == 1
    assert "--audio needs --out-video" in capsys.readouterr().err
    assert cli.main([*base, str(clip25), "--out-video", "o.mp4"]) == 1
    assert "pass one video" in capsys.readouterr().err
