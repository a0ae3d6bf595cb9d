"""Frame-accurate video decoding with PyAV, by decode order.

Upstream (mmaction2's ``DecordInit``/``DecordDecode``) reads videos with decord, whose frame count is the number of
packets of the video stream and whose frame ``i`` is the ``i``-th frame the decoder outputs. Timestamps are not a
reliable frame index (AVI files with packed B-frames, MP4s that skip a timestamp), so this module never seeks and
never looks at timestamps: it demuxes the stream once (which gives the frame count without decoding anything), then
feeds the packets to the decoder from the start and keeps only the frames whose output position was asked for,
stopping at the last one. Only those frames are converted to RGB.

Errors (missing, empty, truncated or undecodable files) raise :class:`VideoDecodeError`, which names the file and
the decoder's reason.

Truncated files, one rule: a video is used only when the file holds every frame its container declares and the
decoder delivers every frame the sampling needs; otherwise it is a bad input (``VideoDecodeError`` saying how many
frames are missing), never a shorter video. The declared count is the container index's frame count (MP4/MOV's
sample table, AVI's header), or, for containers that record none (Matroska/WebM), the video track's duration from
the header times the average frame rate, an estimate, so there a file must hold at least 90% of it. A file cut
inside its index (an MP4 whose ``moov`` comes last) cannot be opened at all. Upstream's decoder refuses such files
too (decord 0.6 ``VideoReader`` on an MP4 cut at 50%: "av_read_frame failed"), so leaving them out matches it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from ..errors import VideoDecodeError

__all__ = ["VideoDecodeError", "VideoFile", "count_frames", "read_frames"]


def _ffmpeg_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class VideoFile:
    """One opened video: its packets are demuxed up front, frames are decoded on request.

    ``len(video)`` is the frame count upstream's decoder reports (the number of packets of the video stream).
    :meth:`read` decodes from the first packet up to the last requested frame and returns the requested frames as
    RGB uint8 ``(n, H, W, 3)`` in the order asked (repeated indices are decoded and converted once).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], threads: str = "AUTO") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoDecodeError(path, "file not found" if not self.path.exists() else "not a regular file")
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(path, "file is empty (0 bytes)")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoDecodeError(path, f"cannot open container ({_ffmpeg_reason(exc)})") from exc
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, "no video stream in the file")
            stream = self._container.streams.best("video")
            assert isinstance(stream, av.video.stream.VideoStream)  # there is a video stream (checked above)
            self._stream = stream
            self._stream.thread_type = threads
            self._packets = self._demux()
        except BaseException:
            self._container.close()
            raise
        if not self._packets:
            self.close()
            raise VideoDecodeError(path, "the video stream has no packets (no frames)")
        shortfall = self._shortfall()
        if shortfall:
            self.close()
            raise VideoDecodeError(path, shortfall)

    def _declared_frames(self) -> tuple[int, bool]:
        """The frame count the container declares and whether it is exact (an index) or estimated (duration x
        rate); ``(0, True)`` when it declares neither."""
        frames = int(self._stream.frames or 0)
        if frames > 0:
            return frames, True
        seconds = self._video_seconds()
        rate = self._stream.average_rate or self._stream.guessed_rate
        if seconds and rate:
            return round(seconds * float(rate)), False
        return 0, True

    def _video_seconds(self) -> float | None:
        """The video track's duration from the header: its own (Matroska's per-track ``DURATION`` tag, or the
        stream's duration), else the container's (which may include a longer audio track)."""
        tag = self._stream.metadata.get("DURATION")  # "HH:MM:SS.nnnnnnnnn", written by ffmpeg and mkvmerge
        if tag:
            try:
                h, m, sec = tag.split(":")
                return int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                pass
        if self._stream.duration and self._stream.time_base:
            return float(self._stream.duration * self._stream.time_base)
        if self._container.duration and self._container.duration > 0:
            return self._container.duration / 1_000_000  # microseconds (av.time_base)
        return None

    def _shortfall(self) -> str | None:
        """Why the file holds fewer frames than its container declares (see the module docstring), or None."""
        declared, exact = self._declared_frames()
        present = len(self._packets)
        if present >= (declared if exact else 0.9 * declared):
            return None
        how = (
            "declares" if exact else f"implies ({self._video_seconds() or 0:.2f} s at {self._stream.average_rate} fps)"
        )
        return (
            f"truncated: the container {how} {declared} frames but the file holds only {present} "
            f"({declared - present} missing); re-download or re-encode it"
        )

    def _demux(self) -> list[av.Packet]:
        packets: list[av.Packet] = []
        try:
            for packet in self._container.demux(self._stream):
                packets.append(packet)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(
                self.path, f"demuxing failed after {len(packets)} packets ({_ffmpeg_reason(exc)})"
            ) from exc
        # PyAV ends a completed demux with one empty flush packet per stream; it is not a frame.
        if packets and packets[-1].size == 0 and packets[-1].pts is None and packets[-1].dts is None:
            packets.pop()
        return packets

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def height(self) -> int:
        """Coded frame height from the stream header."""
        return int(self._stream.codec_context.height)

    @property
    def width(self) -> int:
        """Coded frame width from the stream header."""
        return int(self._stream.codec_context.width)

    @property
    def fps(self) -> float | None:
        """The stream's average frame rate (what PySlowFast's decoder reads: ``float(stream.average_rate)``), or
        None when the header gives none."""
        rate = self._stream.average_rate
        return float(rate) if rate else None

    @property
    def pts_per_frame(self) -> float | None:
        """Stream duration / declared frame count, in time-base units (PySlowFast's decoder's "timebase" for
        seeking a clip), or None when the stream declares no duration or no frame count (then it decodes all)."""
        duration, frames = self._stream.duration, int(self._stream.frames or 0)
        return duration / frames if duration is not None and frames > 0 else None

    def _frames(self) -> Iterable[av.VideoFrame]:
        codec = self._stream.codec_context
        for packet in self._packets:
            yield from codec.decode(packet)
        yield from codec.decode(None)

    def _check(self, indices: Sequence[int] | np.ndarray) -> list[int]:
        wanted = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not wanted:
            raise ValueError("read() needs at least one frame index")
        total = len(self)
        bad = [i for i in wanted if i < 0 or i >= total]
        if bad:
            raise IndexError(f"frame indices {sorted(set(bad))[:5]} out of range for {self.path} with {total} frames")
        return wanted

    def iter_frames(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(position, rgb)`` for each distinct requested position, in increasing order, as decoded.

        ``rgb`` is a fresh uint8 ``(H, W, 3)`` array. Decoding starts at the first packet and stops at the last
        requested position; only the requested frames are converted to RGB. Raises :class:`VideoDecodeError` if the
        decoder fails or ends before the last requested frame, and if the frame size changes mid-stream.
        """
        needed = sorted(set(self._check(indices)))
        last = needed[-1]
        position = -1
        k = 0
        shape = None
        try:
            for frame in self._frames():
                position += 1
                if position == needed[k]:
                    rgb = frame.to_ndarray(format="rgb24")
                    if shape is None:
                        shape = rgb.shape
                    elif rgb.shape != shape:
                        raise VideoDecodeError(self.path, f"frame size changes mid-stream ({shape} vs {rgb.shape})")
                    yield position, rgb
                    k += 1
                if position >= last:
                    break
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(
                self.path, f"decoding failed at frame {position + 1} ({_ffmpeg_reason(exc)})"
            ) from exc
        if position < last:
            raise VideoDecodeError(
                self.path,
                f"the decoder produced only {position + 1} frames of the {len(self)} the stream declares; "
                f"frame {last} was requested (truncated or corrupt file?)",
            )

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """RGB uint8 frames ``(len(indices), H, W, 3)`` at the given decode-order positions."""
        wanted = self._check(indices)
        got = dict(self.iter_frames(wanted))
        first = got[wanted[0]]
        out = np.empty((len(wanted), *first.shape), dtype=np.uint8)
        for k, i in enumerate(wanted):
            out[k] = got[i]
        return out

    def close(self) -> None:
        """Release the file and the decoder."""
        self._packets = []
        self._container.close()

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames of the video as upstream's decoder (decord) reports it, without decoding anything."""
    with VideoFile(path) as video:
        return len(video)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """RGB uint8 frames ``(n, H, W, 3)`` at decode-order positions ``indices`` (see :class:`VideoFile`)."""
    with VideoFile(path) as video:
        return video.read(indices)
