"""Assembling the test views ``(V, C, T, S, S)`` frame by frame, as decoded frames arrive.

Every sampled frame goes through the same per-pixel steps (resize, normalise) and then lands, cropped, in one or
more ``(view, time)`` slots of the output. :class:`ViewWriter` does that for one distinct frame at a time, so a
video's views are written while later frames are still being decoded, the output is written exactly once, and no
float copy of whole frames or of the views is ever made:

1. ``Resize`` on uint8 (:class:`~.transforms.LinearResizer`, bit-exact with OpenCV);
2. normalise the part of the frame the crops cover into a small planar float32 buffer (the uint8 -> float, channel
   split and normalisation in two passes over cache-resident data; :class:`~.transforms.Normalizer`);
3. copy each crop of it into each slot the frame is used in (view ``crop * num_clips + clip``, upstream's
   ``ThreeCrop``/``CenterCrop`` + ``FormatShape('NCTHW')`` order).

:func:`assemble_views` runs a frame source in a background thread (PyAV and Pillow decode without holding the GIL)
while the calling thread does steps 1-3, so decoding overlaps the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from .transforms import LinearResizer, Normalizer

__all__ = ["ViewWriter", "assemble_views"]


class ViewWriter:
    """Write distinct frames into the test views.

    Args:
        inverse: ``(num_clips * clip_len,)``: for each sampled frame (clip-major), the number of the distinct frame
            it is (as from ``np.unique(..., return_inverse=True)``).
        num_clips, clip_len: the layout of ``inverse``.
        frame_size: ``(H, W, C)`` of the incoming uint8 frames.
        resized: ``(new_h, new_w)`` after the protocol's resize (``(H, W)`` for none).
        offsets: ``(top, left)`` of each crop on the resized frame, in upstream's order.
        crop_size: side of the square crops.
        normalizer: a :class:`~.transforms.Normalizer` for float32 views, or ``None`` for uint8 views.

    :attr:`out` is the views tensor, complete once every distinct frame has been written.
    """

    def __init__(
        self,
        inverse: np.ndarray,
        num_clips: int,
        clip_len: int,
        frame_size: tuple[int, int, int],
        resized: tuple[int, int],
        offsets: Sequence[tuple[int, int]],
        crop_size: int,
        normalizer: Normalizer | None,
    ) -> None:
        inverse = np.asarray(inverse).reshape(-1)
        if inverse.size != num_clips * clip_len:
            raise ValueError(f"{inverse.size} sampled frames are not {num_clips} clips x {clip_len} frames")
        h, w, c = frame_size
        self.frame_size = (int(h), int(w), int(c))
        self.resized = (int(resized[0]), int(resized[1]))
        self.num_clips, self.clip_len = int(num_clips), int(clip_len)
        self.offsets = [(int(t), int(l)) for t, l in offsets]
        self.size = int(crop_size)
        self.normalizer = normalizer
        self.num_distinct = int(inverse.max()) + 1
        # slots[d]: the (clip, time) positions that distinct frame d fills
        self.slots: list[list[tuple[int, int]]] = [[] for _ in range(self.num_distinct)]
        for position, d in enumerate(inverse.tolist()):
            self.slots[d].append(divmod(position, self.clip_len))
        self.written = np.zeros(self.num_distinct, dtype=bool)
        self.resizer = LinearResizer(*self.frame_size, *self.resized) if self.resized != self.frame_size[:2] else None
        self._resized = torch.empty((*self.resized, c), dtype=torch.uint8) if self.resizer is not None else None
        # the box of the resized frame that the crops cover: only that part is normalised
        s = self.size
        self.top = min(t for t, _ in self.offsets)
        self.left = min(l for _, l in self.offsets)
        self.bottom = max(t for t, _ in self.offsets) + s
        self.right = max(l for _, l in self.offsets) + s
        if self.top < 0 or self.left < 0 or self.bottom > self.resized[0] or self.right > self.resized[1]:
            raise ValueError(f"crops {self.offsets} of size {s} do not fit a {self.resized[0]}x{self.resized[1]} frame")
        box = (c, self.bottom - self.top, self.right - self.left)
        self._planar = torch.empty(box, dtype=torch.float32) if normalizer is not None else None
        dtype = torch.float32 if normalizer is not None else torch.uint8
        self.out = torch.empty((len(self.offsets) * self.num_clips, c, self.clip_len, s, s), dtype=dtype)

    def write(self, d: int, frame: torch.Tensor) -> None:
        """Write distinct frame number ``d`` (uint8 ``(H, W, C)``, before the resize) into all its slots."""
        if tuple(frame.shape) != self.frame_size:
            raise ValueError(f"frame {d} has size {tuple(frame.shape)}, the first frame had {self.frame_size}")
        if self.resizer is not None:
            frame = self.resizer(frame, out=self._resized)
        box = frame[self.top : self.bottom, self.left : self.right].permute(2, 0, 1)  # (C, h, w) view
        if self.normalizer is not None:
            src = self.normalizer(box, channel_dim=0, out=self._planar)
        else:
            src = box
        s, nc = self.size, self.num_clips
        for clip, t in self.slots[d]:
            for k, (top, left) in enumerate(self.offsets):
                y, x = top - self.top, left - self.left
                self.out[k * nc + clip, :, t].copy_(src[:, y : y + s, x : x + s])
        self.written[d] = True

    def result(self) -> torch.Tensor:
        """The views, after checking that every distinct frame was written."""
        if not self.written.all():
            missing = np.flatnonzero(~self.written)[:5].tolist()
            raise RuntimeError(f"views incomplete: distinct frames {missing} were never written")
        return self.out


_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _produce(frames: Iterator[tuple[int, np.ndarray]], out: queue.Queue, stop: threading.Event) -> None:
    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in frames:
            if not put(item):
                return
        put(_DONE)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
        put(_Failure(exc))
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # finish a generator here, while what it reads from is still open


def assemble_views(
    frames: Iterator[tuple[int, np.ndarray]],
    make_writer: Callable[[tuple[int, int, int]], ViewWriter],
    threaded: bool = True,
    prefetch: int = 16,
) -> torch.Tensor:
    """Views from ``frames``, an iterator of ``(distinct_number, uint8 (H, W, C) array)``.

    ``make_writer(frame_size)`` is called with the first frame's size. With ``threaded=True`` the iterator runs in
    a background thread (at most ``prefetch`` frames ahead) while this thread writes the views; an exception in the
    iterator is re-raised here, and an exception here stops the iterator before this function returns. The
    iterator's resources (e.g. an open video) must stay valid until this function returns.
    """
    writer: ViewWriter | None = None

    def consume(d: int, array: np.ndarray) -> None:
        nonlocal writer
        if not array.flags.writeable:  # e.g. Pillow's buffers; never written, but torch warns about them
            array = array.copy()
        frame = torch.from_numpy(array)
        if writer is None:
            writer = make_writer(tuple(frame.shape))
        writer.write(d, frame)

    if not threaded:
        for d, array in frames:
            consume(d, array)
    else:
        items: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        producer = threading.Thread(target=_produce, args=(frames, items, stop), name="slowonly-zoo-decode", daemon=True)
        producer.start()
        try:
            while True:
                item = items.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                consume(*item)
        finally:
            stop.set()
            producer.join()
    if writer is None:
        raise ValueError("no frames to make views of")
    return writer.result()
