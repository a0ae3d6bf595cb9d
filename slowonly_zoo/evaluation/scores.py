"""A durable, append-only store of per-video results, and the final ``scores.npz``.

Layout of an output folder::

    run.json               what was evaluated (model, annotation hash, checkpoint hash, protocol, ...); a resumed
                           run must match it
    records-rank0.jsonl    one JSON line per finished video, appended and flushed as each video finishes
    records-rank1.jsonl    (one file per torch.distributed rank)
    scores.npz             the merged result in annotation order (written at the end)

A record line holds the video's annotation ``index``, ``id`` (the annotation's path or frame_dir), ``label``,
``status`` (``"ok"`` or ``"failed"``), ``error`` (the reason, for failures), ``views`` and the averaged class
probabilities as base64 of little-endian float32 (exact, compact). Lines are self-contained, so a process killed at
any moment (even ``kill -9`` in the middle of a write) leaves at most one torn last line, which is ignored when
reading and cut off before the file is appended to again.
"""

from __future__ import annotations

import base64
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._fileio import atomic_replace, atomic_write_text
from ..errors import RunMismatchError, ScoreMismatchError
from ..progress import logger

__all__ = [
    "RUN_FILE",
    "SCORES_FILE",
    "RunMismatchError",
    "ScoreStore",
    "ScoreTable",
    "VideoRecord",
    "read_records",
    "read_scores",
    "write_scores",
]

RUN_FILE = "run.json"
SCORES_FILE = "scores.npz"
_RECORDS_GLOB = "records-rank*.jsonl"


@dataclass(frozen=True)
class VideoRecord:
    """The result for one video of the annotation list."""

    index: int
    """Position in the annotation file (0-based)."""
    id: str
    """The annotation's path (videos) or frame_dir (rawframes)."""
    label: int
    status: str
    """``"ok"`` or ``"failed"``."""
    error: str | None = None
    scores: np.ndarray | None = field(default=None, compare=False)
    """Averaged class probabilities, float32 (num_classes,); None for failures."""
    views: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> str:
        obj: dict[str, Any] = {"index": self.index, "id": self.id, "label": self.label, "status": self.status}
        if self.error is not None:
            obj["error"] = self.error
        if self.views is not None:
            obj["views"] = self.views
        if self.scores is not None:
            s = np.ascontiguousarray(self.scores, dtype="<f4")
            obj["num_classes"] = int(s.shape[0])
            obj["scores_f32_b64"] = base64.b64encode(s.tobytes()).decode("ascii")
        return json.dumps(obj, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> VideoRecord:
        obj = json.loads(line)
        scores = None
        if "scores_f32_b64" in obj:
            scores = np.frombuffer(base64.b64decode(obj["scores_f32_b64"]), dtype="<f4").astype(np.float32)
            if scores.shape[0] != obj["num_classes"]:
                raise ValueError("score length does not match num_classes")
        status = obj["status"]
        if status not in ("ok", "failed") or (status == "ok") != (scores is not None):
            raise ValueError(f"inconsistent record status {status!r}")
        return cls(
            index=int(obj["index"]),
            id=str(obj["id"]),
            label=int(obj["label"]),
            status=status,
            error=obj.get("error"),
            scores=scores,
            views=obj.get("views"),
        )


def _prefer(old: VideoRecord | None, new: VideoRecord) -> VideoRecord:
    """Which of two records for one video wins: a success over a failure, else the later one."""
    if old is None or new.ok or not old.ok:
        return new
    return old


def _read_lines(path: Path) -> tuple[list[VideoRecord], int]:
    """Records of one file and the byte length of its intact part (everything up to the last good newline)."""
    data = path.read_bytes()
    records: list[VideoRecord] = []
    end = data.rfind(b"\n") + 1  # a torn last line (no newline) is dropped
    for lineno, raw in enumerate(data[:end].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            records.append(VideoRecord.from_json(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            logger.warning(
                "%s:%d: ignoring an unreadable result record (%s); that video will be redone", path, lineno, err
            )
    return records, end


def read_records(out_dir: str | Path) -> dict[int, VideoRecord]:
    """Every finished video recorded in ``out_dir`` (all ranks' files), keyed by annotation index."""
    merged: dict[int, VideoRecord] = {}
    for path in sorted(Path(out_dir).glob(_RECORDS_GLOB)):
        for rec in _read_lines(path)[0]:
            merged[rec.index] = _prefer(merged.get(rec.index), rec)
    return merged


class ScoreStore:
    """Appends one rank's per-video results to ``out_dir/records-rank{rank}.jsonl``.

    Each record is written with a single ``write`` and flushed at once, so it survives the process being killed;
    ``fsync_every`` records it is also ``fsync``-ed (surviving a power loss). Use as a context manager.
    """

    def __init__(self, out_dir: str | Path, *, rank: int = 0, fsync_every: int = 16) -> None:
        self.out_dir = Path(out_dir)
        self.rank = rank
        self.path = self.out_dir / f"records-rank{rank}.jsonl"
        self.fsync_every = max(1, fsync_every)
        self._fh: BinaryIO | None = None
        self._pending = 0

    def open(self) -> ScoreStore:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _, intact = _read_lines(self.path)
            if intact != self.path.stat().st_size:
                with open(self.path, "r+b") as fh:  # cut a torn last line before appending after it
                    fh.truncate(intact)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across appends, closed by close()
        return self

    def append(self, record: VideoRecord) -> None:
        if self._fh is None:
            raise RuntimeError("ScoreStore.append called before open()")
        self._fh.write((record.to_json() + "\n").encode("utf-8"))
        self._fh.flush()
        self._pending += 1
        if self._pending >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._pending = 0

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ScoreStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_run_info(out_dir: str | Path, info: Mapping[str, Any]) -> None:
    """Record ``info`` in ``out_dir/run.json``, or check that it matches what an earlier run there recorded.

    Raises :class:`RunMismatchError` when the folder holds results of a different evaluation (another model,
    annotation file, checkpoint, protocol or precision), naming the differing fields.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_FILE
    canonical = json.loads(json.dumps(dict(info), sort_keys=True, default=str))
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            previous = None
        if not isinstance(previous, dict):
            raise RunMismatchError(
                f"{path} is damaged (not the JSON object slowonly-zoo writes), so the results beside it cannot be "
                "resumed; delete that folder to start over, or choose another --out folder"
            )
        if previous != canonical:
            diff = sorted(k for k in set(previous) | set(canonical) if previous.get(k) != canonical.get(k))
            raise RunMismatchError(
                f"{out_dir} holds results of a different evaluation (differs in: {', '.join(diff)}), so they "
                "cannot be resumed. Choose another --out folder, or delete this one to start over."
            )
        return
    atomic_write_text(path, json.dumps(canonical, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class ScoreTable:
    """Per-video scores of one evaluation, in annotation order (the content of ``scores.npz``)."""

    ids: np.ndarray
    """str (N,): annotation path / frame_dir of each evaluated video."""
    labels: np.ndarray
    """int64 (N,)."""
    scores: np.ndarray
    """float32 (N, num_classes): averaged class probabilities."""
    failed_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    failed_reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    @property
    def failed(self) -> list[tuple[str, str]]:
        return list(zip(self.failed_ids.tolist(), self.failed_reasons.tolist()))

    @classmethod
    def from_records(cls, records: Iterable[VideoRecord], num_classes: int | None = None) -> ScoreTable:
        recs = sorted(records, key=lambda r: r.index)
        ok = [r for r in recs if r.ok]
        bad = [r for r in recs if not r.ok]
        if ok:
            if any(r.scores is None for r in ok):
                raise ValueError("a record with status 'ok' has no scores; the record file is damaged")
            scores = np.stack([np.asarray(r.scores) for r in ok]).astype(np.float32)
        else:
            scores = np.zeros((0, num_classes or 0), dtype=np.float32)
        return cls(
            ids=np.array([r.id for r in ok], dtype=str),
            labels=np.array([r.label for r in ok], dtype=np.int64),
            scores=scores,
            failed_ids=np.array([r.id for r in bad], dtype=str),
            failed_reasons=np.array([r.error or "unknown error" for r in bad], dtype=str),
        )


def write_scores(path: str | Path, table: ScoreTable) -> Path:
    """Write ``table`` to ``path`` (``.npz``) atomically: arrays ``ids``, ``labels``, ``scores``, ``failed_ids``,
    ``failed_reasons``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            ids=table.ids,
            labels=table.labels,
            scores=table.scores,
            failed_ids=table.failed_ids,
            failed_reasons=table.failed_reasons,
        )
    return path


def read_scores(path: str | Path) -> ScoreTable:
    """Read a ``scores.npz`` written by :func:`write_scores` (or any ``.npz`` with ``ids``, ``labels``, ``scores``)."""
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_FILE
    if not path.exists():
        raise FileNotFoundError(f"no scores file at {path}: run `slowonly-zoo verify ... --out DIR` first")
    try:
        with np.load(path, allow_pickle=False) as z:  # never unpickle: a scores file holds plain arrays only
            missing = {"ids", "labels", "scores"} - set(z.files)
            if missing:
                raise ScoreMismatchError(f"{path} is not a slowonly-zoo scores file: it lacks {sorted(missing)}")
            ids, labels, scores = z["ids"], z["labels"], z["scores"]
            failed_ids = z["failed_ids"] if "failed_ids" in z.files else np.zeros(0, dtype=str)
            failed_reasons = z["failed_reasons"] if "failed_reasons" in z.files else np.zeros(0, dtype=str)
    except ScoreMismatchError:
        raise
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:  # pickled objects, not an .npz, truncated
        raise ScoreMismatchError(
            f"{path} is not a plain-array scores.npz ({exc}); slowonly-zoo never unpickles it, so pass the "
            "scores.npz that `slowonly-zoo verify --out DIR` wrote"
        ) from None
    if scores.ndim != 2 or ids.shape != (scores.shape[0],) or labels.shape != ids.shape:
        raise ScoreMismatchError(
            f"{path}: ids {ids.shape}, labels {labels.shape} and scores {scores.shape} do not agree"
        )
    return ScoreTable(ids.astype(str), labels.astype(np.int64), scores.astype(np.float32), failed_ids, failed_reasons)
