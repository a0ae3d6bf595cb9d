"""Frame-accurate video decoding with PyAV, by decode order.

Upstream (mmaction2's ``DecordInit``/``DecordDecode``) reads videos with decord, whose frame count is the number of
packets of the video stream and whose frame ``i`` is the ``i``-th frame the decoder outputs. Timestamps are not a
reliable frame index (AVI files with packed B-frames, MP4s that skip a timestamp), so this module never seeks and
never looks at timestamps: it demuxes the stream once (which gives the frame count without decoding anything), then
feeds the packets to the decoder from the start and keeps only the frames whose output position was asked for,
stopping at the last one. Only those frames are converted to RGB.

Errors (missing, empty, truncated or undecodable files) raise :class:`VideoDecodeError`, which names the file and
the decoder's reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np

__all__ = ["VideoDecodeError", "VideoFile", "count_frames", "read_frames"]


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded. ``path`` is the file, ``reason`` what went wrong."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path!r}: {reason}")


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
            self._stream = self._container.streams.best("video")
            self._stream.thread_type = threads
            self._packets = self._demux()
        except BaseException:
            self._container.close()
            raise
        if not self._packets:
            self.close()
            raise VideoDecodeError(path, "the video stream has no packets (no frames)")

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
