"""Reading frame folders (upstream ``RawframeDataset`` + ``RawFrameDecode``).

RGB frames are ``frame_dir / filename_tmpl.format(idx)`` (``img_{:05}.jpg`` by default; Jester and sthv1 use
``{:05}.jpg``), decoded to RGB uint8. Flow frames are two grayscale JPEGs per index, ``filename_tmpl.format('x', idx)``
and ``.format('y', idx)`` (``{}_{:05d}.jpg``), stacked as channels (x, y). Only the listed files are read, each once.

JPEGs are decoded with Pillow (libjpeg-turbo, default settings: integer DCT, fancy upsampling), which gives the same
pixels as upstream's ``cv2.imdecode`` (also libjpeg-turbo); the tests check this bit for bit. A colour JPEG read as a
flow frame is decoded straight to luma by libjpeg (Pillow's draft mode), as OpenCV's ``IMREAD_GRAYSCALE`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FrameReadError
from .formats import FRAME_SUFFIXES

__all__ = [
    "FLOW_TEMPLATE",
    "RGB_TEMPLATE",
    "RGB_TEMPLATE_CANDIDATES",
    "FrameReadError",
    "count_rawframes",
    "decode_image",
    "find_rgb_template",
    "is_frame_folder",
    "iter_flow_frames",
    "iter_rgb_frames",
    "read_flow_frames",
    "read_rgb_frames",
]

RGB_TEMPLATE = "img_{:05}.jpg"
FLOW_TEMPLATE = "{}_{:05d}.jpg"
RGB_TEMPLATE_CANDIDATES: tuple[str, ...] = ("img_{:05}.jpg", "{:05}.jpg", "img_{:05d}.png", "{:06}.jpg")
"""RGB frame-name templates :func:`find_rgb_template` tries after the protocol's own: upstream's default, the
sthv1/Jester layout, PNG frames, and six-digit numbering."""


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding frame images (``.jpg`` / ``.jpeg`` / ``.png`` files)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())


def find_rgb_template(frame_dir: str | os.PathLike[str], preferred: str | None = None) -> tuple[str, int] | None:
    """The file-name template an RGB frame folder follows and the number of its first frame, or None.

    Tries ``preferred`` (the protocol's template) and then :data:`RGB_TEMPLATE_CANDIDATES`, first for a frame
    numbered 1 (upstream's ``start_index``), then for one numbered 0.
    """
    frame_dir = Path(frame_dir)
    candidates = [t for t in (preferred, *RGB_TEMPLATE_CANDIDATES) if t]
    for start in (1, 0):
        for tmpl in candidates:
            if (frame_dir / tmpl.format(start)).is_file():
                return tmpl, start
    return None


def decode_image(path: str | os.PathLike[str], mode: str) -> np.ndarray:
    """Decode one image file to uint8: ``mode='RGB'`` gives ``(H, W, 3)``, ``mode='L'`` gives ``(H, W)``."""
    try:
        with Image.open(path) as im:
            if mode == "L" and im.mode != "L" and im.format == "JPEG":
                im.draft("L", im.size)  # libjpeg's own colour-to-gray output, like cv2.IMREAD_GRAYSCALE
            if im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise FrameReadError(path, "file not found") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameReadError(path, f"{type(exc).__name__}: {exc}") from exc


def iter_rgb_frames(
    frame_dir: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, filename_tmpl: str = RGB_TEMPLATE
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` (uint8 ``(H, W, 3)``) for each distinct frame number in ``indices``, in increasing order.

    Raises :class:`FrameReadError` for a missing or undecodable file, or a frame whose size differs from the first.
    """
    frame_dir = Path(frame_dir)
    shape = None
    for idx in sorted(set(np.asarray(indices).reshape(-1).tolist())):
        frame = decode_image(frame_dir / filename_tmpl.format(idx), "RGB")
        shape = _same_size(shape, frame, frame_dir / filename_tmpl.format(idx))
        yield idx, frame


def iter_flow_frames(
    frame_dir: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, filename_tmpl: str = FLOW_TEMPLATE
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, flow)`` (uint8 ``(H, W, 2)``: x then y) for each distinct frame number, in increasing order."""
    frame_dir = Path(frame_dir)
    shape = None
    for idx in sorted(set(np.asarray(indices).reshape(-1).tolist())):
        x = decode_image(frame_dir / filename_tmpl.format("x", idx), "L")
        y = decode_image(frame_dir / filename_tmpl.format("y", idx), "L")
        if x.shape != y.shape:
            raise FrameReadError(
                frame_dir / filename_tmpl.format("y", idx), f"size {y.shape} differs from the x frame's {x.shape}"
            )
        frame = np.stack([x, y], axis=-1)
        shape = _same_size(shape, frame, frame_dir / filename_tmpl.format("x", idx))
        yield idx, frame


def _same_size(shape: tuple[int, ...] | None, frame: np.ndarray, path: Path) -> tuple[int, ...]:
    if shape is not None and frame.shape != shape:
        raise FrameReadError(path, f"frames of different sizes in one folder: {shape} and {frame.shape}")
    return frame.shape


def _gather(frames: Iterator[tuple[int, np.ndarray]], indices: Sequence[int] | np.ndarray) -> np.ndarray:
    got = dict(frames)
    order = np.asarray(indices).reshape(-1).tolist()
    if not order:
        raise ValueError("no frame indices given")
    return np.stack([got[i] for i in order])


def read_rgb_frames(
    frame_dir: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, filename_tmpl: str = RGB_TEMPLATE
) -> np.ndarray:
    """RGB uint8 frames ``(n, H, W, 3)`` for the given (already start-index-shifted) frame numbers (each read once)."""
    return _gather(iter_rgb_frames(frame_dir, indices, filename_tmpl), indices)


def read_flow_frames(
    frame_dir: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, filename_tmpl: str = FLOW_TEMPLATE
) -> np.ndarray:
    """Flow uint8 frames ``(n, H, W, 2)``: channel 0 from the ``x`` file, channel 1 from the ``y`` file."""
    return _gather(iter_flow_frames(frame_dir, indices, filename_tmpl), indices)


def _template_regex(filename_tmpl: str, flow_prefix: str | None) -> re.Pattern[str]:
    """A regex matching the file names ``filename_tmpl`` produces (RGB: one number; flow: prefix then number)."""
    parts = re.split(r"(\{[^}]*\})", filename_tmpl)
    out = []
    fields = 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            fields += 1
            if flow_prefix is not None and fields == 1:
                out.append(re.escape(flow_prefix))
            else:
                out.append(r"\d+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


def count_rawframes(frame_dir: str | os.PathLike[str], filename_tmpl: str = RGB_TEMPLATE, modality: str = "rgb") -> int:
    """Frame count of a folder, as upstream's file-list tools write it into the annotation file.

    * A folder holding both RGB frames and ``x_``/``y_`` flow frames (GYM99's layout) counts ``len(listdir) // 3``,
      as mmaction2 0.x ``tools/data/gym/generate_file_list.py`` does, for both modalities.
    * Otherwise RGB counts the files matching ``filename_tmpl`` and flow counts the ``x`` files
      (``tools/data/build_file_list.py``).
    """
    frame_dir = Path(frame_dir)
    if not frame_dir.is_dir():
        raise FrameReadError(frame_dir, "frame folder not found")
    names = os.listdir(frame_dir)
    flow_tmpl = filename_tmpl if modality == "flow" else FLOW_TEMPLATE
    rgb_tmpl = filename_tmpl if modality == "rgb" else RGB_TEMPLATE
    rgb_re = _template_regex(rgb_tmpl, None)
    x_re = _template_regex(flow_tmpl, "x")
    n_rgb = sum(1 for name in names if rgb_re.match(name))
    n_x = sum(1 for name in names if x_re.match(name))
    if n_rgb and n_x:
        return len(names) // 3
    return n_x if modality == "flow" else n_rgb
