"""A model's clip slid over a whole video: top-k classes per window with timestamps (``predict --timeline``).

Why a module of its own rather than ``predict`` with a frame plan: a frame plan makes the test pipeline demux the
whole video first (:class:`~slowonly_zoo.data.decode.VideoFile` keeps every packet to count frames exactly, as
upstream's decoder does) and assemble every window's views before the first forward pass, so memory grows with
the video. Here the video is decoded once, in order (``container.decode(video=0)``), and only the frames that a
window still waiting for its last frame samples are kept (:class:`WindowSchedule`: at most ``clip_len`` frames
per pending window, never more than one span); each window is classified the moment its last frame arrives.

Each window is exactly what ``predict --clips 1`` makes of a clip: the entry's :func:`inference_protocol` with one
centre crop, its frames resized, normalised and cropped by the test pipeline's own
:meth:`~slowonly_zoo.data.pipeline.TestPipeline.writer`, run through :func:`~slowonly_zoo.runtime.forward_views`,
softmax. (The same windows through ``TestPipeline(frame_plan=sliding_windows(...))`` give the same numbers; the
tests check it.)

Windows: the clip is ``clip_len`` frames every ``frame_interval`` frames, spanning ``(clip_len - 1) *
frame_interval + 1`` frames. Windows start every ``window_stride`` frames, by default ``clip_len *
frame_interval``: consecutive windows then continue one grid of sampled frames (every ``frame_interval``-th frame
of the video is in exactly one window). A window counts only if its whole span is in the video; a video shorter
than one span gives one window whose frame indices wrap around, as upstream's sampler loops short videos.

Timestamps are seconds from the first frame's presentation timestamp, ``(pts - first pts) * stream.time_base``
(exact fractions, then float). A window ends at the timestamp of the frame after its span, or for a span that
ends with the video, at the last frame's timestamp plus its duration.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._fileio import atomic_replace, atomic_write_text
from .errors import InferenceError, UnsupportedProtocolError, VideoDecodeError
from .index import ModelEntry, TestProtocol, get_model_info
from .inference import ClassScore, inference_protocol, input_pipeline, load_model
from .progress import progress_bar
from .runtime import forward_views

__all__ = [
    "CSV_COLUMNS",
    "Timeline",
    "TimelineWindow",
    "WindowSchedule",
    "check_timeline_input",
    "plot",
    "read_windows",
    "timeline",
    "write_csv",
    "write_json",
]

#: Columns of :func:`write_csv`: one row per window and rank.
CSV_COLUMNS = ("window", "start_frame", "end_frame", "start", "end", "rank", "index", "label", "prob")


@dataclass(frozen=True)
class TimelineWindow:
    """One window of a timeline: the entry's clip (``clip_len`` frames every ``frame_interval``) starting at
    decode-order frame ``start_frame``.

    ``end_frame`` is exclusive (``start_frame + (clip_len - 1) * frame_interval + 1``); ``start`` / ``end`` are
    seconds from the stream's start, from the presentation timestamps of frame ``start_frame`` and of the frame
    after the span (the last frame's timestamp plus its duration for the last window). ``topk`` are the best named
    classes in decreasing order.
    """

    index: int
    start_frame: int
    end_frame: int
    start: float
    end: float
    topk: tuple[ClassScore, ...]


@dataclass(frozen=True)
class Timeline:
    """What :func:`timeline` found: the windows with their top-k, and every window's full probability vector.

    ``probs`` is ``(num_windows, num_classes)`` float32 (rows sum to 1; GYM99's 400-way heads included, as in
    :class:`~slowonly_zoo.inference.Prediction`). ``num_frames`` counts the frames decoded; ``fps`` is the
    stream's average frame rate (0.0 where the container states none). ``peak_buffered_frames`` is the most
    decoded frames held at once (see :class:`WindowSchedule`), reported so that bounded memory can be checked.
    """

    model: str
    video: str
    fps: float
    num_frames: int
    clip_len: int
    frame_interval: int
    window_stride: int
    class_names: tuple[str, ...]
    windows: tuple[TimelineWindow, ...]
    probs: np.ndarray = field(repr=False, compare=False)
    peak_buffered_frames: int = 0

    def top_classes(self, top: int = 5) -> list[int]:
        """The ``top`` named classes with the highest probability in any window (ties: higher mean first)."""
        named = len(self.class_names) or self.probs.shape[1]
        if len(self.probs) == 0:
            return []
        peak = self.probs[:, :named].max(axis=0)
        mean = self.probs[:, :named].mean(axis=0)
        order = np.lexsort((-mean, -peak))  # last key first: by peak, then by mean
        return [int(i) for i in order[: max(1, int(top))]]

    def label(self, index: int) -> str:
        """The name of head output ``index``, or ``<output N>`` for an unnamed one."""
        return self.class_names[index] if index < len(self.class_names) else f"<output {index}>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the metadata and the windows with their top-k (not the full probability matrix)."""
        return {
            "model": self.model,
            "video": self.video,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "clip_len": self.clip_len,
            "frame_interval": self.frame_interval,
            "window_stride": self.window_stride,
            "windows": [
                {**dataclasses.asdict(w), "topk": [dataclasses.asdict(c) for c in w.topk]} for w in self.windows
            ],
        }


class WindowSchedule:
    """Which decoded frames the sliding windows need, and which frames may be dropped: the bounded frame buffer.

    Frame ``position`` (decode order) is kept only while a window that samples it still waits for its last frame;
    :attr:`peak` is the most frames held at once. With ``keep_short`` (a video that may be shorter than one
    span) the first span's frames are all kept until the span is complete, for the wrapped window of a short
    video; either way the buffer never holds more than one span of frames.
    """

    def __init__(self, clip_len: int, frame_interval: int, stride: int, keep_short: bool = False) -> None:
        if stride < 1:
            raise InferenceError(f"--window-stride must be 1 or more frames, got {stride}")
        self.clip_len, self.interval, self.stride = int(clip_len), int(frame_interval), int(stride)
        self.span = (self.clip_len - 1) * self.interval + 1
        self.keep_short = keep_short
        self.frames: dict[int, np.ndarray] = {}
        self.peak = 0

    def needed(self, position: int) -> bool:
        """Whether some window samples frame ``position`` (or it may serve a short video's wrapped window)."""
        if self.keep_short and position < self.span - 1:
            return True
        first = max(0, -(-(position - self.span + 1) // self.stride))  # first window whose span reaches here
        last = position // self.stride
        return any((position - k * self.stride) % self.interval == 0 for k in range(first, last + 1))

    def add(self, position: int, frame: np.ndarray) -> None:
        """Hold ``frame`` (a frame :meth:`needed` said yes to)."""
        self.frames[position] = frame
        self.peak = max(self.peak, len(self.frames))

    def completed(self, position: int) -> int | None:
        """The start of the window whose last sampled frame is ``position``, if there is one."""
        start = position - self.span + 1
        return start if start >= 0 and start % self.stride == 0 else None

    def clip(self, start: int) -> list[np.ndarray]:
        """The ``clip_len`` frames of the window starting at ``start`` (all held)."""
        return [self.frames[start + t * self.interval] for t in range(self.clip_len)]

    def release(self, position: int) -> None:
        """Drop the frames no window after ``position`` needs (called once frame ``position`` is used)."""
        oldest = max(0, -(-(position - self.span + 2) // self.stride)) * self.stride  # first still-open window
        if self.keep_short and position < self.span - 1:
            return
        for p in [p for p in self.frames if p < oldest]:
            del self.frames[p]


# --------------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------------


@dataclass
class _Stream:
    """The opened video: its frames in order, time base, average frame rate (0: unknown) and declared frame
    count (0: unknown)."""

    frames: Iterator[Any]
    time_base: Fraction
    rate: Fraction
    declared: int

    @property
    def fps(self) -> float:
        return float(self.rate)


def _seconds(pts: int | None, pts0: int, time_base: Fraction, position: int, rate: Fraction) -> Fraction:
    """Seconds of a frame from the first one's timestamp; frames without a timestamp count by the frame rate."""
    if pts is None:
        return position / rate if rate else Fraction(0)
    return (pts - pts0) * time_base


# --------------------------------------------------------------------------------------------------
# the timeline
# --------------------------------------------------------------------------------------------------


class _Classifier:
    """One window's frames -> probabilities, exactly as ``predict --clips 1`` would classify that clip."""

    def __init__(self, model: nn.Module, pipeline: Any, clip_len: int) -> None:
        self.model = model
        self.pipeline = pipeline
        self.device = next(model.parameters()).device
        self.clip_len = clip_len

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        ids = [id(f) for f in frames]  # a short video's wrapped window repeats frames: each is written once
        distinct = list(dict.fromkeys(ids))
        inverse = np.array([distinct.index(i) for i in ids])
        writer = self.pipeline.writer(inverse, 1, self.clip_len, tuple(frames[0].shape))
        by_id = {id(f): f for f in frames}
        for d, key in enumerate(distinct):
            writer.write(d, torch.from_numpy(by_id[key]))
        logits = forward_views(self.model, writer.result(), self.device, 1)
        probs = torch.softmax(logits, dim=-1)[0]
        if not bool(torch.isfinite(probs).all()):
            raise InferenceError("the model's scores are not finite (NaN or infinite); check the checkpoint")
        return probs.cpu().numpy().astype(np.float32)


def _window_protocol(entry: ModelEntry) -> TestProtocol:
    """``predict --clips 1``'s protocol (one centre crop) for an entry whose clips are mmaction2's: ``clip_len``
    frames every ``frame_interval`` frames, softmax scores. FAIR's protocols sample by time at their own frame
    rate and some score with sigmoids; sliding that grid over a video would silently be another model input."""
    protocol = inference_protocol(entry, clips=1)
    if not protocol.is_mmaction2:
        raise UnsupportedProtocolError(
            f"a timeline slides mmaction2-style clips ({protocol.clip_len} frames every {protocol.frame_interval}) "
            f"and does not run {entry.name}'s protocol ({', '.join(protocol.fair_pieces())}); use "
            "`slowonly-zoo predict --clips N` for this model"
        )
    return protocol


_Row = tuple[int, int, tuple[Fraction, Fraction], np.ndarray]


def _slide(
    stream: _Stream,
    schedule: WindowSchedule,
    classify: _Classifier,
    path: Path,
    progress: bool | None,
) -> tuple[list[_Row], int]:
    """Decode every frame once, classify each window as its last frame arrives, time it once the frame after its
    span arrives. Returns ``(start_frame, end_frame, (start, end), probs)`` per window and the frames decoded."""
    import av

    span, stride = schedule.span, schedule.stride
    rows: list[_Row] = []
    starts: dict[int, Fraction] = {}  # start times of the windows not yet classified
    waiting: list[tuple[int, np.ndarray]] = []  # classified windows waiting for the frame after their span
    pts0: int | None = None
    position = -1
    now = step = Fraction(0)
    shape: tuple[int, ...] | None = None
    bar = progress_bar(total=stream.declared or None, desc=path.name, unit="frame", leave=False, progress=progress)
    try:
        with bar:
            for frame in stream.frames:
                position += 1
                if pts0 is None:
                    pts0 = frame.pts if frame.pts is not None else 0
                t = _seconds(frame.pts, pts0, stream.time_base, position, stream.rate)
                if position > 0:
                    step = t - now
                now = t
                if frame.duration:  # the stream's own duration of this frame, for the end of the last window
                    step = frame.duration * stream.time_base
                while waiting and waiting[0][0] + span == position:
                    start, probs = waiting.pop(0)
                    rows.append((start, position, (starts.pop(start), t), probs))
                if position % stride == 0:
                    starts[position] = t
                if schedule.needed(position):
                    rgb = frame.to_ndarray(format="rgb24")
                    if shape is None:
                        shape = rgb.shape
                    elif rgb.shape != shape:
                        raise VideoDecodeError(path, f"frame size changes mid-stream ({shape} vs {rgb.shape})")
                    schedule.add(position, rgb)
                done = schedule.completed(position)
                if done is not None:
                    waiting.append((done, classify(schedule.clip(done))))
                schedule.release(position)
                bar.update(1)
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(path, f"decoding failed at frame {position + 1} ({type(exc).__name__}: {exc})") from exc
    if position < 0:
        raise VideoDecodeError(path, "the video stream has no frames")
    if not step and stream.rate:
        step = 1 / stream.rate
    end = now + step
    rows.extend((start, start + span, (starts.pop(start), end), probs) for start, probs in waiting)
    if not rows:  # shorter than one span: one window whose indices wrap around, as upstream loops short videos
        total = position + 1
        wrapped = [(t * schedule.interval) % total for t in range(schedule.clip_len)]
        if any(i not in schedule.frames for i in wrapped):
            raise VideoDecodeError(
                path, f"the stream declares {stream.declared} frames but the decoder produced only {total}"
            )
        rows.append((0, total, (Fraction(0), end), classify([schedule.frames[i] for i in wrapped])))
    return rows, position + 1


def _frame_folder_error(path: Path) -> InferenceError:
    return InferenceError(
        f"{path} is a frame folder; a timeline decodes a video file once, in order. Use `slowonly-zoo extract "
        "--clip-stride S` for sliding windows over frame folders"
    )


def check_timeline_input(name: str, video: str | os.PathLike[str]) -> None:
    """Refuse, before any weights are fetched, a ``video`` that model ``name``'s timeline cannot run on: a frame
    folder, an input its pipeline refuses, a FAIR protocol (``UnsupportedProtocolError``)."""
    path = Path(video)
    if path.is_dir():
        raise _frame_folder_error(path)
    entry = get_model_info(name)
    input_pipeline(_window_protocol(entry), entry, path)


def timeline(
    model_or_name: nn.Module | str,
    video: str | os.PathLike[str],
    *,
    window_stride: int | None = None,
    topk: int = 5,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = True,
) -> Timeline:
    """Slide the entry's clip over the whole of ``video`` and classify every window (see the module docstring).

    Args:
        model_or_name: a model name (released weights, or ``checkpoint``) or a model from ``create_model``.
        video: a video file (frame folders are refused: use ``predict`` / ``extract --clip-stride`` on them).
        window_stride: frames between window starts; default ``clip_len * frame_interval``.
        topk: named classes kept per window.
        device: default: the GPU when there is one.
        progress: a bar over the decoded frames (None: on a terminal).

    Raises :class:`InferenceError` for inputs the model cannot use, ``UnsupportedProtocolError`` for FAIR test
    protocols, :class:`VideoDecodeError` for unreadable videos.
    """
    import av

    path = Path(video)
    if window_stride is not None and int(window_stride) < 1:
        raise InferenceError(f"--window-stride must be 1 or more frames, got {window_stride}")
    if isinstance(model_or_name, str):  # refuse what cannot run before any weights are fetched
        check_timeline_input(model_or_name, path)
    elif path.is_dir():
        raise _frame_folder_error(path)
    model, entry = load_model(model_or_name, checkpoint=checkpoint, device=device)
    protocol = _window_protocol(entry)
    pipeline = input_pipeline(protocol, entry, path)
    if pipeline.modality != "rgb":
        raise InferenceError(f"{entry.name} is an optical-flow model; a timeline needs an RGB model and a video")
    from .factory import class_names_of

    labels = class_names_of(model, entry)
    clip_len, interval = int(protocol.clip_len), int(protocol.frame_interval)
    stride = int(window_stride) if window_stride is not None else clip_len * interval
    classify = _Classifier(model, pipeline, clip_len)

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(path, f"cannot open container ({type(exc).__name__}: {exc})") from exc
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream in the file")
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        rate = vstream.average_rate
        stream = _Stream(
            container.decode(video=0),
            Fraction(vstream.time_base) if vstream.time_base else Fraction(1, 1),
            Fraction(rate) if rate else Fraction(0),
            int(vstream.frames or 0),
        )
        span = (clip_len - 1) * interval + 1
        schedule = WindowSchedule(clip_len, interval, stride, keep_short=stream.declared < span)
        rows, decoded = _slide(stream, schedule, classify, path, progress)

    named = len(labels) if labels else (rows[0][3].shape[0] if rows else 0)
    windows = []
    for k, (start_frame, end_frame, (t0, t1), probs) in enumerate(rows):
        ranked = np.argsort(-probs[:named], kind="stable")[: max(1, int(topk))]
        top = tuple(ClassScore(int(i), labels[i] if i < len(labels) else None, float(probs[i])) for i in ranked)
        windows.append(TimelineWindow(k, start_frame, end_frame, float(t0), float(t1), top))
    matrix = np.stack([r[3] for r in rows]) if rows else np.zeros((0, named), dtype=np.float32)
    return Timeline(
        model=entry.name,
        video=str(path),
        fps=stream.fps,
        num_frames=decoded,
        clip_len=clip_len,
        frame_interval=interval,
        window_stride=stride,
        class_names=tuple(labels),
        windows=tuple(windows),
        probs=matrix,
        peak_buffered_frames=schedule.peak,
    )


# --------------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------------


def write_json(result: Timeline, path: str | os.PathLike[str]) -> Path:
    """:meth:`Timeline.to_dict` as indented JSON, written atomically. :func:`read_windows` reads it back."""
    return atomic_write_text(Path(path), json.dumps(result.to_dict(), indent=1) + "\n")


def read_windows(path: str | os.PathLike[str]) -> tuple[TimelineWindow, ...]:
    """The windows of a :func:`write_json` file (e.g. to draw them on the video later without rerunning)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return tuple(
            TimelineWindow(
                int(w["index"]),
                int(w["start_frame"]),
                int(w["end_frame"]),
                float(w["start"]),
                float(w["end"]),
                tuple(ClassScore(int(c["index"]), c["label"], float(c["prob"])) for c in w["topk"]),
            )
            for w in data["windows"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InferenceError(f"{path} is not a timeline JSON file written by slowonly-zoo ({exc!r})") from exc


def write_csv(result: Timeline, path: str | os.PathLike[str]) -> Path:
    """One row per window and rank (:data:`CSV_COLUMNS`), a long table that spreadsheets and pandas filter and
    pivot directly; times in seconds, probabilities with 6 decimals. Written atomically."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for w in result.windows:
        for rank, c in enumerate(w.topk, 1):
            label = c.label if c.label is not None else ""
            out.writerow(
                [
                    w.index,
                    w.start_frame,
                    w.end_frame,
                    f"{w.start:.6f}",
                    f"{w.end:.6f}",
                    rank,
                    c.index,
                    label,
                    f"{c.prob:.6f}",
                ]
            )
    return atomic_write_text(Path(path), buf.getvalue())


def plot(
    result: Timeline,
    path: str | os.PathLike[str],
    *,
    top: int = 5,
    size: tuple[float, float] = (8.0, 3.0),
    dpi: int = 100,
) -> Path:
    """A PNG of the ``top`` classes' probabilities over time (:meth:`Timeline.top_classes`): one line per class,
    a point per window at the middle of its span, x in seconds. The image is exactly ``size`` inches at ``dpi``
    (``size[0] * dpi`` x ``size[1] * dpi`` pixels). Drawn with matplotlib's Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    mids = [(w.start + w.end) / 2 for w in result.windows]
    for i in result.top_classes(top):
        ax.plot(mids, result.probs[:, i], marker="o", markersize=3, linewidth=1.5, label=result.label(i))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_ylim(-0.03, 1.03)
    if result.windows:
        ax.set_xlim(result.windows[0].start, result.windows[-1].end)
    ax.set_title(f"{Path(result.video).name}: {result.model}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    path = Path(path)
    with atomic_replace(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
