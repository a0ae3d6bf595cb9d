"""Labelled output video: generated clips in, decoded output checked frame by frame (count, size, timestamps, which
window's labels each frame shows, audio only when asked)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from mm_pipeline import write_clip
from PIL import Image

from slowonly_zoo.errors import InferenceError, VideoDecodeError
from slowonly_zoo.inference import ClassScore
from slowonly_zoo.overlay import (
    label_box,
    label_font,
    label_lines,
    label_margin,
    pick_windows,
    write_labelled_video,
)
from slowonly_zoo.timeline import TimelineWindow

FPS, N, W, H = 25, 64, 160, 120
AUDIO_RATE = 16000


def _frame(i: int, height: int, width: int) -> np.ndarray:
    """A smooth moving gradient: changes every frame, compresses well (small codec error)."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = x + i  # at most 222: no wrap-around, no sharp edge
    img[..., 1] = 60 + y
    img[..., 2] = 160
    return img


def _write(path: Path, *, width: int = W, height: int = H, audio: bool = False, rate: Fraction | int = FPS) -> Path:
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "mono"
        for i in range(N):
            out.mux(video.encode(av.VideoFrame.from_ndarray(_frame(i, height, width), format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            total = round(AUDIO_RATE * N / FPS)
            for start in range(0, total, 1024):
                samples = np.sin(np.arange(start, start + 1024) / 8.0).astype(np.float32)[None] * 0.2
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = AUDIO_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def _decode(path: Path) -> tuple[np.ndarray, list[float], int | None]:
    """RGB frames, their presentation times (s), and the number of audio samples (None: no audio stream)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        images = np.stack([f.to_ndarray(format="rgb24") for f in frames])
        times = [float(f.time) for f in frames]
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0)) if container.streams.audio else None
    return images, times, samples


def _windows() -> list[TimelineWindow]:
    """Three 32-frame windows every 16 frames (centres 15.5, 31.5, 47.5), each with its own labels."""
    names = [("playing guitar", "juggling"), ("surfing", None), ("abseiling", "yoga")]
    out = []
    for k, (first, second) in enumerate(names):
        start = 16 * k
        scores = (
            ClassScore(3 * k, first, 0.9 - 0.2 * k),
            ClassScore(3 * k + 1, second, 0.06),
            ClassScore(7, "x", 0.01),
        )
        out.append(TimelineWindow(k, start, start + 32, start / FPS, (start + 32) / FPS, scores))
    return out


#: The window each of the 64 frames shows under the nearest-centre rule (frame 23.5 is the 0/1 boundary, 39.5 the 1/2).
EXPECTED = [0] * 24 + [1] * 16 + [2] * 24


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("overlay")
    return {"plain": _write(d / "plain.mp4"), "audio": _write(d / "audio.mp4", audio=True)}


def test_pick_windows_nearest_centre_earlier_on_tie():
    a = TimelineWindow(0, 0, 5, 0.0, 0.2, ())  # centre 2
    b = TimelineWindow(1, 2, 7, 0.08, 0.28, ())  # centre 4
    picks = pick_windows([b, a])  # order given does not matter
    assert [next(picks).index for _ in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]  # frame 3 is a tie: the earlier
    picks = pick_windows(_windows())
    assert [next(picks).index for _ in range(N)] == EXPECTED
    with pytest.raises(InferenceError, match="no timeline windows"):
        pick_windows([])  # at once, not at the first frame


def test_label_lines_format():
    assert label_lines(_windows()[1], 3) == ["0.70 surfing", "0.06 class 4", "0.01 x"]
    assert label_lines(_windows()[0], 1) == ["0.90 playing guitar"]
    font = label_font(H)
    assert label_box(["0.70 surfing"], font).height < label_box(label_lines(_windows()[1], 3), font).height
    assert label_box([], font).getextrema()[3] == (0, 0)  # no named classes: nothing drawn (fully transparent)


def test_labelled_video_frames_sizes_times_and_labels(clips, tmp_path):
    src = clips["plain"]
    out = write_labelled_video(src, tmp_path / "sub" / "labelled.mp4", _windows(), progress=False)
    assert out == tmp_path / "sub" / "labelled.mp4"
    assert [p.name for p in out.parent.iterdir()] == ["labelled.mp4"]  # no temporary file left beside it
    source, src_times, _ = _decode(src)
    drawn, times, samples = _decode(out)
    assert drawn.shape == source.shape == (N, H, W, 3)
    assert times == pytest.approx(src_times, abs=1e-6) and times[1] == pytest.approx(1 / FPS)
    assert samples is None  # no audio stream

    diff = np.abs(drawn.astype(int) - source.astype(int))
    assert diff[:, 4:12, 4:30].mean() > 40  # the label box and its text
    assert diff[:, 72:, 112:].mean() < 3  # bottom-right, far from the text: the source, up to codec error

    # Which window's labels each frame shows: the source frame with each window's box pasted on it, nearest wins.
    patches = [label_box(label_lines(w, 3), label_font(H)) for w in _windows()]
    margin = label_margin(H)
    ph, pw = max(p.height for p in patches), max(p.width for p in patches)
    region = np.s_[margin : margin + ph, margin : min(W, margin + pw)]
    shown = []
    for i in range(N):
        errors = []
        for patch in patches:
            reference = Image.fromarray(source[i])
            reference.paste(patch, (margin, margin), patch)
            errors.append(np.abs(np.asarray(reference)[region].astype(int) - drawn[i][region].astype(int)).mean())
        shown.append(int(np.argmin(errors)))
        assert sorted(errors)[0] < 0.5 * sorted(errors)[1]  # a clear winner, not codec noise
    assert shown == EXPECTED


def test_audio_only_when_asked(clips, tmp_path):
    src = clips["audio"]
    _, _, src_samples = _decode(src)
    assert src_samples and src_samples >= AUDIO_RATE * N / FPS
    _, _, without = _decode(write_labelled_video(src, tmp_path / "silent.mp4", _windows(), progress=False))
    assert without is None
    drawn, times, with_audio = _decode(
        write_labelled_video(src, tmp_path / "sound.mkv", _windows(), with_audio=True, progress=False)
    )
    assert len(drawn) == N and len(times) == N
    assert with_audio is not None and abs(with_audio - src_samples) <= 1024  # same duration, up to one AAC frame


def test_unnamed_pcm_layout_is_re_encoded_to_aac(tmp_path):
    """PCM in AVI has an unnamed channel layout ("2 channels") that the AAC encoder refuses as such."""
    src = tmp_path / "pcm.avi"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=AUDIO_RATE)
        sound.layout = "stereo"
        for i in range(25):
            out.mux(video.encode(av.VideoFrame.from_ndarray(_frame(i, 48, 64), format="rgb24")))
        out.mux(video.encode(None))
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 2 * AUDIO_RATE), np.int16), format="s16", layout="stereo")
        chunk.sample_rate, chunk.pts = AUDIO_RATE, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    with av.open(str(src)) as container:
        assert container.streams.audio[0].layout.name == "2 channels"
    out = write_labelled_video(src, tmp_path / "pcm.mp4", _windows(), with_audio=True, progress=False)
    frames, _, samples = _decode(out)
    assert len(frames) == 25 and samples is not None and abs(samples - AUDIO_RATE) <= 1024
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.streams.audio[0].layout.name == "stereo"


def test_with_audio_on_a_silent_source_warns(clips, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="slowonly_zoo"):
        out = write_labelled_video(clips["plain"], tmp_path / "x.mov", _windows(), with_audio=True, progress=False)
    assert "no audio stream" in caplog.text
    frames, _, samples = _decode(out)
    assert len(frames) == N and samples is None


def test_odd_size_and_non_integer_rate_kept(tmp_path):
    src = _write(tmp_path / "odd.mkv", width=95, height=63, rate=Fraction(30000, 1001))
    out = write_labelled_video(src, tmp_path / "odd_out.mkv", _windows()[:1], topk=1, progress=False)
    source, src_times, _ = _decode(src)
    drawn, times, _ = _decode(out)
    assert drawn.shape == source.shape == (N, 63, 95, 3)
    assert times == pytest.approx(src_times, abs=1e-6) and times[1] == pytest.approx(1001 / 30000, abs=1e-3)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_b_frame_source_keeps_every_frame(tmp_path):
    src = write_clip(tmp_path / "bframes.mp4", 64, 48, 40, options={"bf": "3", "g": "12"})
    out = write_labelled_video(src, tmp_path / "b_out.mp4", _windows(), progress=False)
    source, src_times, _ = _decode(src)
    drawn, times, _ = _decode(out)
    assert drawn.shape == source.shape and times == pytest.approx(src_times, abs=1e-6)


def test_overwrites_existing_output(clips, tmp_path):
    out = tmp_path / "labelled.mp4"
    out.write_bytes(b"old")
    write_labelled_video(clips["plain"], out, _windows(), progress=False)
    assert len(_decode(out)[0]) == N


def test_errors(clips, tmp_path):
    with pytest.raises(InferenceError, match="no timeline windows"):
        write_labelled_video(clips["plain"], tmp_path / "a.mp4", [], progress=False)
    with pytest.raises(InferenceError, match=r"unknown output extension '\.txt'.*\.mp4"):
        write_labelled_video(clips["plain"], tmp_path / "a.txt", _windows(), progress=False)
    with pytest.raises(InferenceError, match="topk"):
        write_labelled_video(clips["plain"], tmp_path / "a.mp4", _windows(), topk=0, progress=False)
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "img_00001.jpg").write_bytes(b"")
    with pytest.raises(InferenceError, match="frame folder"):
        write_labelled_video(folder, tmp_path / "a.mp4", _windows(), progress=False)
    with pytest.raises(VideoDecodeError, match="file not found"):
        write_labelled_video(tmp_path / "missing.mp4", tmp_path / "a.mp4", _windows(), progress=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoDecodeError):
        write_labelled_video(broken, tmp_path / "a.mp4", _windows(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "frames"]  # nothing written, no temp file
