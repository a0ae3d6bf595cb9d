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

:func:`assemble_views` runs a frame source (the decoder) in one worker thread while a second one does steps 1-3,
so decoding overlaps the rest (PyAV and Pillow decode without holding the GIL, torch ops release it too); once the
source is exhausted, the first thread writes frames as well (distinct frames fill disjoint parts of the output).
Both run their torch ops serially (see :mod:`.threads`): per-frame ops are small, and an OpenMP team per op costs
far more than it gains when the cores are busy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import cast

import numpy as np
import torch

from .threads import serial_torch_in_this_thread
from .transforms import LinearResizer, Normalizer

__all__ = ["ViewWriter", "Workspace", "assemble_views"]


class Workspace:
    """Scratch buffers for writing frames (one per thread: a :class:`ViewWriter` may be fed by several threads)."""

    def __init__(self, writer: ViewWriter) -> None:
        self.key = writer.workspace_key()
        h, w, c = writer.frame_size
        self.resizer = (
            LinearResizer(h, w, c, *writer.resized, separate_planes=writer.separate_planes)
            if writer.resized != (h, w)
            else None
        )
        self.resized = torch.empty((*writer.resized, c), dtype=torch.uint8) if self.resizer is not None else None
        box = (c, writer.bottom - writer.top, writer.right - writer.left)
        self.planar = torch.empty(box, dtype=torch.float32 if writer.normalizer is not None else torch.uint8)


class _WorkspacePool:
    """The last few workspaces, for the next video of the same geometry: fresh memory costs page faults and
    zeroing (a few ms per video here), reused memory does not. Holds at most ``size`` workspaces (~13 MB each for
    a 640x360 video)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.spare: list[Workspace] = []

    def take(self, writer: ViewWriter) -> Workspace:
        key = writer.workspace_key()
        with self.lock:
            for k, ws in enumerate(self.spare):
                if ws.key == key:
                    return self.spare.pop(k)
        return Workspace(writer)

    def give_back(self, workspace: Workspace) -> None:
        with self.lock:
            self.spare.append(workspace)
            del self.spare[: -self.size]


_POOL = _WorkspacePool()


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
        separate_planes: resize each channel as its own grey image (flow's x/y planes, as upstream does).

    :attr:`out` is the views tensor, complete once every distinct frame has been written (:meth:`result` checks).
    Different distinct frames may be written from different threads at once, each thread with its own
    :class:`Workspace`.
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
        separate_planes: bool = False,
    ) -> None:
        inverse = np.asarray(inverse).reshape(-1)
        if inverse.size != num_clips * clip_len:
            raise ValueError(f"{inverse.size} sampled frames are not {num_clips} clips x {clip_len} frames")
        h, w, c = frame_size
        self.frame_size = (int(h), int(w), int(c))
        self.resized = (int(resized[0]), int(resized[1]))
        self.num_clips, self.clip_len = int(num_clips), int(clip_len)
        self.offsets = [(int(top), int(left)) for top, left in offsets]
        self.size = int(crop_size)
        self.normalizer = normalizer
        self.separate_planes = bool(separate_planes)
        self.num_distinct = int(inverse.max()) + 1
        # slots[d]: the (clip, time) positions that distinct frame d fills
        self.slots: list[list[tuple[int, int]]] = [[] for _ in range(self.num_distinct)]
        for position, d in enumerate(inverse.tolist()):
            self.slots[d].append(divmod(position, self.clip_len))
        self.written = np.zeros(self.num_distinct, dtype=bool)
        # the box of the resized frame that the crops cover: only that part is normalised
        s = self.size
        self.top = min(t for t, _ in self.offsets)
        self.left = min(left for _, left in self.offsets)
        self.bottom = max(t for t, _ in self.offsets) + s
        self.right = max(left for _, left in self.offsets) + s
        if self.top < 0 or self.left < 0 or self.bottom > self.resized[0] or self.right > self.resized[1]:
            raise ValueError(f"crops {self.offsets} of size {s} do not fit a {self.resized[0]}x{self.resized[1]} frame")
        dtype = torch.float32 if normalizer is not None else torch.uint8
        self.out = torch.empty((len(self.offsets) * self.num_clips, c, self.clip_len, s, s), dtype=dtype)
        self._workspace: Workspace | None = None

    def workspace_key(self) -> tuple:
        """What a :class:`Workspace` for this writer depends on."""
        return (
            self.frame_size,
            self.resized,
            self.top,
            self.bottom,
            self.left,
            self.right,
            self.normalizer is not None,
            self.separate_planes,
        )

    def write(self, d: int, frame: torch.Tensor, workspace: Workspace | None = None) -> None:
        """Write distinct frame number ``d`` (uint8 ``(H, W, C)``, before the resize) into all its slots.

        ``workspace``: this thread's scratch buffers (default: the writer's own, for single-threaded use).
        """
        if tuple(frame.shape) != self.frame_size:
            raise ValueError(f"frame {d} has size {tuple(frame.shape)}, the first frame had {self.frame_size}")
        if workspace is None:
            if self._workspace is None:
                self._workspace = Workspace(self)
            workspace = self._workspace
        if workspace.resizer is not None:
            frame = workspace.resizer(frame, out=workspace.resized)
        box = frame[self.top : self.bottom, self.left : self.right].permute(2, 0, 1)  # (C, h, w) view
        # planar, so that every crop copy below moves whole rows
        if self.normalizer is not None:
            src = self.normalizer(box, channel_dim=0, out=workspace.planar)
        else:
            src = workspace.planar.copy_(box)
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


class _Job:
    """One call of :func:`assemble_views`: the frame queue, the writer (made from the first frame) and failures."""

    def __init__(self, make_writer: Callable[[tuple[int, int, int]], ViewWriter], prefetch: int) -> None:
        self.make_writer = make_writer
        self.items: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.writer: ViewWriter | None = None
        self.failure: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> object:
        while not self.stop.is_set():
            try:
                return self.items.get(timeout=0.05)
            except queue.Empty:
                continue
        return _DONE

    def write(self, d: int, array: np.ndarray, workspace: list[Workspace]) -> None:
        if not array.flags.writeable:  # e.g. Pillow's buffers; never written, but torch warns about them
            array = array.copy()
        frame = torch.from_numpy(array)
        with self.lock:
            if self.writer is None:
                h, w, c = frame.shape
                self.writer = self.make_writer((h, w, c))
        if not workspace:
            workspace.append(_POOL.take(self.writer))
        self.writer.write(d, frame, workspace[0])

    def consume(self) -> None:
        """Write frames from the queue until it is finished (or the job failed)."""
        workspace: list[Workspace] = []
        try:
            serial_torch_in_this_thread()
            while True:
                item = self.get()
                if item is _DONE:
                    self.put(_DONE)  # for the other consumer
                    return
                d, array = cast("tuple[int, np.ndarray]", item)
                self.write(d, array, workspace)
        except BaseException as exc:  # noqa: BLE001 - re-raised by assemble_views
            self.fail(exc)
        finally:
            for ws in workspace:
                _POOL.give_back(ws)

    def produce(self, frames: Iterator[tuple[int, np.ndarray]]) -> None:
        """Put the frames into the queue, then help writing them."""
        try:
            for item in frames:
                if not self.put(item):
                    return
            self.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised by assemble_views
            self.fail(exc)
            return
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # finish a generator here, while what it reads from is still open
        self.consume()


def assemble_views(
    frames: Iterator[tuple[int, np.ndarray]],
    make_writer: Callable[[tuple[int, int, int]], ViewWriter],
    threaded: bool = True,
    prefetch: int = 16,
) -> torch.Tensor:
    """Views from ``frames``, an iterator of ``(distinct_number, uint8 (H, W, C) array)``.

    ``make_writer(frame_size)`` is called once, with the first frame's size. With ``threaded=True`` the iterator
    runs in one worker thread (at most ``prefetch`` frames ahead) while a second one writes the views, and the first
    helps writing once the iterator is exhausted; this thread waits for both. The first exception (from the iterator
    or from writing) is re-raised here after both threads have stopped, so the iterator's resources (e.g. an open
    video) only need to stay valid until this function returns. With ``threaded=False`` everything runs here.
    """
    job = _Job(make_writer, prefetch)
    if not threaded:
        workspace: list[Workspace] = []
        try:
            for d, array in frames:
                job.write(d, array, workspace)
        finally:
            for ws in workspace:
                _POOL.give_back(ws)
    else:
        workers = [
            threading.Thread(target=job.produce, args=(frames,), name="slowonly-zoo-decode", daemon=True),
            threading.Thread(target=job.consume, name="slowonly-zoo-views", daemon=True),
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        finally:  # e.g. KeyboardInterrupt while waiting: stop the workers before the frame source is closed
            job.stop.set()
            for worker in workers:
                worker.join()
        if job.failure is not None:
            raise job.failure
    if job.writer is None:
        raise ValueError("no frames to make views of")
    return job.writer.result()
