"""A copy of a video with each frame's current top-k labels drawn on it (``predict --out-video``).

The source is decoded once, in order, one frame at a time (never the whole video in memory), the way
:mod:`slowonly_zoo.data.decode` counts frames: frame ``i`` is the ``i``-th frame the decoder outputs, the index a
:class:`~slowonly_zoo.timeline.TimelineWindow`'s ``start_frame`` / ``end_frame`` use.

Which window a frame shows: the one whose centre (``(start_frame + end_frame - 1) / 2``) is nearest to the frame's
index, the earlier one on a tie, so the labels are in step with what is on screen. (mmaction2's long-video demo
draws on each frame the prediction of the window that has just ended there, as a live stream must, so its labels
lag the action by up to a window; with the whole timeline computed beforehand there is no need to.) Frames before
the first centre or after the last show the first or last window: every frame carries a label.

The labels (``"0.93 playing guitar"``, best first) are drawn with Pillow's default font, sized to the frame height,
in white on a semi-transparent black box at the top-left corner. The output has the source's frame size, frame
count and presentation timestamps (its time base and average frame rate), encoded with libx264 (else mpeg4):
``yuv420p`` when width and height are even; for an odd size, where 4:2:0 chroma cannot be used by libx264, H.264
4:4:4 (``yuv444p``) keeps the size exact (some players, browsers among them, do not play 4:4:4: crop the source to
an even size if you need them); mpeg4 takes ``yuv420p`` at any size. Audio is left out unless asked for; then it
is re-encoded to AAC, which every output container here accepts whatever the source's audio codec is.

The file is written beside ``out`` under a temporary name and renamed into place when complete
(:mod:`slowonly_zoo._fileio`), so an interrupted run never leaves a half-written video at ``out``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fileio import atomic_replace
from .errors import InferenceError, VideoDecodeError
from .progress import logger, progress_bar

if TYPE_CHECKING:
    import av
    from PIL import Image

    from .timeline import TimelineWindow

__all__ = [
    "OUTPUT_FORMATS",
    "label_box",
    "label_font",
    "label_lines",
    "label_margin",
    "output_format",
    "pick_windows",
    "write_labelled_video",
]

OUTPUT_FORMATS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
"""Output suffix (lower case) → container format. The temporary file's name has no usable suffix, so the format is
always named explicitly."""

_BOX_RGBA = (0, 0, 0, 160)  # black, ~63% opaque: the text stays readable on bright and dark frames alike
_TEXT_RGBA = (255, 255, 255, 255)


def _centre(window: TimelineWindow) -> float:
    return (window.start_frame + window.end_frame - 1) / 2


def pick_windows(windows: Sequence[TimelineWindow]) -> Iterator[TimelineWindow]:
    """An endless iterator giving, for frame 0, 1, 2, ..., the window that frame shows: the window whose centre is
    nearest to the frame index, the earlier on a tie (see the module docstring). Streaming: one pointer moves
    forward through the windows sorted by centre. An empty ``windows`` is an :class:`InferenceError` at once."""
    if not windows:
        raise InferenceError("no timeline windows to draw; compute the timeline first (predict --timeline)")
    return _nearest_centres(sorted(windows, key=lambda w: (_centre(w), w.start_frame)))


def _nearest_centres(ordered: list[TimelineWindow]) -> Iterator[TimelineWindow]:
    """:func:`pick_windows` over windows sorted by centre (a generator, so separate from the check above, which
    must run before the first frame is asked for)."""
    current, frame = 0, 0
    while True:
        while current + 1 < len(ordered) and abs(_centre(ordered[current + 1]) - frame) < abs(
            _centre(ordered[current]) - frame
        ):
            current += 1
        yield ordered[current]
        frame += 1


def label_font(height: int) -> Any:
    """Pillow's default font at about 1/30 of the frame height (at least 10 px); the fixed-size bitmap font on a
    Pillow without a scalable default (before 10.1)."""
    from PIL import ImageFont

    size = max(10, round(height / 30))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: load_default() takes no size
        return ImageFont.load_default()


def label_lines(window: TimelineWindow, topk: int) -> list[str]:
    """The text drawn for ``window``: ``"{prob:.2f} {label}"`` for its best ``topk`` classes (an unnamed head output
    is shown as ``class {index}``)."""
    return [
        f"{score.prob:.2f} {score.label if score.label is not None else f'class {score.index}'}"
        for score in window.topk[:topk]
    ]


def label_box(lines: list[str], font: Any) -> Image.Image:
    """The label box as an RGBA image: a semi-transparent box with the lines in white; pasted with itself as the
    mask, it blends onto a frame. No lines (a window without named classes): a transparent pixel, nothing drawn."""
    from PIL import Image, ImageDraw

    if not lines:
        return Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    boxes = [probe.textbbox((0, 0), line, font=font) for line in lines]
    line_height = math.ceil(max(b[3] for b in boxes)) + 2
    pad = max(2, line_height // 4)
    width = math.ceil(max(b[2] for b in boxes)) + 2 * pad
    patch = Image.new("RGBA", (width, line_height * len(lines) + 2 * pad), _BOX_RGBA)
    draw = ImageDraw.Draw(patch)
    for row, line in enumerate(lines):
        draw.text((pad, pad + row * line_height), line, font=font, fill=_TEXT_RGBA)
    return patch


def label_margin(height: int) -> int:
    """The gap between the label box and the frame's top and left edges, in pixels."""
    return max(2, height // 60)


def _video_codec(width: int, height: int) -> tuple[str, str]:
    """(codec, pixel format) for a frame size: libx264 + yuv420p, libx264 + yuv444p for odd sizes, else mpeg4 +
    yuv420p (which accepts odd sizes)."""
    import av

    if "libx264" in av.codecs_available:
        return "libx264", "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return "mpeg4", "yuv420p"


#: AAC's layout for a channel count. A source's layout may be unnamed ("2 channels", PCM in AVI), which the AAC
#: encoder refuses; by count, the encoder's resampler maps the source's channels onto a layout it knows.
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _aac_layout(channels: int) -> str:
    """The AAC layout for ``channels`` source channels; more than eight are mixed down to stereo."""
    return _AAC_LAYOUTS.get(channels, "stereo")


def output_format(out: str | os.PathLike[str]) -> str:
    """The container format for the output file ``out`` (from its suffix), or an :class:`InferenceError` naming
    the suffixes that work. Cheap: callers check ``--out-video`` with it before any timeline is computed."""
    out = Path(out)
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InferenceError(
            f"cannot write a labelled video to {out}: unknown output extension {out.suffix or '(none)'!r}; "
            f"name the file with one of {', '.join(OUTPUT_FORMATS)} (e.g. labelled.mp4)"
        )
    return fmt


def _check_source(source: Path) -> None:
    if source.is_dir():
        raise InferenceError(
            f"{source} is a frame folder; a labelled video is drawn on a video file. Encode the frames into one "
            f"first (e.g. `ffmpeg -framerate 30 -i {source}/img_%05d.jpg clip.mp4`) and pass that"
        )
    if not source.is_file():
        raise VideoDecodeError(source, "file not found" if not source.exists() else "not a regular file")


class _Timestamps:
    """Output timestamps in the source's time base: the decoded frame's own ``pts`` while they increase, else
    (missing or out-of-order timestamps, e.g. AVI's packed B-frames) the previous one plus one frame's duration, so
    the encoder always gets strictly increasing timestamps and each frame keeps its place in time."""

    def __init__(self, time_base: Fraction, rate: Fraction | None) -> None:
        self.step = max(1, round(1 / (rate * time_base))) if rate else 1
        self.last: int | None = None

    def __call__(self, pts: int | None) -> int:
        if pts is None or (self.last is not None and pts <= self.last):
            pts = 0 if self.last is None else self.last + self.step
        self.last = pts
        return pts


def write_labelled_video(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    windows: Sequence[TimelineWindow],
    *,
    topk: int = 3,
    with_audio: bool = False,
    progress: bool | None = True,
) -> Path:
    """Write ``source`` to ``out`` with each frame's window's top ``topk`` labels and probabilities drawn at the
    top-left (the window rule, codecs and sizes: see the module docstring). Audio is copied (re-encoded to AAC)
    only with ``with_audio=True``; a source without audio then only logs a warning. Returns ``out``.

    Errors: :class:`InferenceError` for empty ``windows``, ``topk < 1``, an unknown output extension or a frame
    folder as ``source``; :class:`VideoDecodeError` for a missing or undecodable video.
    """
    import av

    source, out = Path(source), Path(out)
    if topk < 1:
        raise InferenceError(f"topk must be at least 1 (got {topk})")
    picks = pick_windows(windows)  # raises for an empty list before anything is opened
    fmt = output_format(out)
    _check_source(source)
    try:
        container = av.open(str(source), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(source, f"cannot open container ({type(exc).__name__}: {exc})") from exc
    with container:
        if not container.streams.video:
            raise VideoDecodeError(source, "no video stream in the file")
        video_in = container.streams.best("video")  # the stream data.decode reads, whose frames the windows index
        assert isinstance(video_in, av.video.stream.VideoStream)  # there is a video stream (checked above)
        video_in.thread_type = "AUTO"
        audio_in = container.streams.audio[0] if with_audio and container.streams.audio else None
        if with_audio and audio_in is None:
            logger.warning("%s has no audio stream; writing %s without audio", source, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replace(out) as tmp:
            _transcode(container, video_in, audio_in, tmp, fmt, picks, topk, progress)
    return out


def _transcode(
    container: av.container.InputContainer,
    video_in: av.video.stream.VideoStream,
    audio_in: av.audio.stream.AudioStream | None,
    tmp: Path,
    fmt: str,
    picks: Iterator[TimelineWindow],
    topk: int,
    progress: bool | None,
) -> None:
    """Decode ``container`` packet by packet, draw on every video frame, encode into ``tmp``."""
    import av

    ctx = video_in.codec_context
    width, height = ctx.width, ctx.height
    if not width or not height:
        raise VideoDecodeError(container.name, "the video stream declares no frame size")
    time_base = video_in.time_base or Fraction(1, 90000)
    rate = video_in.average_rate or video_in.guessed_rate
    codec, pix_fmt = _video_codec(width, height)
    font = label_font(height)
    margin = label_margin(height)
    stamps = _Timestamps(time_base, rate)
    shown: tuple[TimelineWindow, Image.Image] | None = None  # the window drawn last and its label box
    with av.open(str(tmp), mode="w", format=fmt) as output:
        video_out = output.add_stream(codec, rate=rate or Fraction(25))
        video_out.width, video_out.height, video_out.pix_fmt = width, height, pix_fmt
        video_out.codec_context.time_base = time_base
        audio_out = None
        if audio_in is not None:
            audio_out = output.add_stream("aac", rate=audio_in.rate)
            audio_out.layout = _aac_layout(len(audio_in.layout.channels))
        streams = (video_in,) if audio_in is None else (video_in, audio_in)
        bar = progress_bar(total=video_in.frames or None, desc="labelling", unit="frame", progress=progress)
        try:
            for packet in container.demux(*streams):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    raise VideoDecodeError(container.name, f"decoding failed ({type(exc).__name__}: {exc})") from exc
                for frame in frames:
                    if isinstance(frame, av.AudioFrame):
                        assert audio_out is not None
                        output.mux(audio_out.encode(frame))
                        continue
                    if not isinstance(frame, av.VideoFrame):  # only video and audio streams are demuxed
                        continue
                    window = next(picks)
                    if shown is None or shown[0] is not window:
                        shown = (window, label_box(label_lines(window, topk), font))
                    image = frame.to_image(width=width, height=height)  # a mid-stream size change: back to the first
                    image.paste(shown[1], (margin, margin), shown[1])
                    drawn = av.VideoFrame.from_image(image).reformat(format=pix_fmt)
                    drawn.pts, drawn.time_base = stamps(frame.pts), time_base
                    output.mux(video_out.encode(drawn))
                    bar.update(1)
            output.mux(video_out.encode(None))
            if audio_out is not None:
                output.mux(audio_out.encode(None))
        finally:
            bar.close()
    if stamps.last is None:
        raise VideoDecodeError(container.name, "the video stream has no frames")
