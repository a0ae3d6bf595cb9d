"""Training curves: loss, lr and accuracy from a trainer ``log.jsonl``, beside an upstream ``log.json``.

Both files hold one JSON record per line with the keys of mmaction2 0.x's published ``*.log.json`` files
(mmcv 1.7.0 ``TextLoggerHook``): ``mode`` ('train' or 'val'), ``epoch`` (1-based), ``iter`` (1-based iteration
inside the epoch for train records), ``lr``, ``memory``, ``data_time``, ``time``, ``loss_cls``, ``loss``,
``grad_norm``, ``top1_acc``, ``top5_acc`` and, for val records, ``mean_class_accuracy``. Upstream's first line
holds environment information (no ``mode``) and is skipped, as are blank lines.

Train records are placed at ``epoch - 1 + iter / iters_per_epoch`` epochs, where ``iters_per_epoch`` is the
largest ``iter`` of any train record of the file (the last logged iteration of an epoch, a close estimate);
val records at their epoch. matplotlib (the ``[plot]`` extra) is imported only when a figure is drawn, and
without pyplot (no global state, no display needed).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, PlotLogError

__all__ = ["MissingExtraError", "PlotLogError", "TrainingLog", "plot_logs", "read_log"]

PLOT_EXTRA_HINT = "pip install 'slowonly-zoo[plot]'"


@dataclass
class Curve:
    """One series: x in epochs, y values."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def add(self, x: float, y: Any) -> None:
        if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y):
            self.x.append(float(x))
            self.y.append(float(y))


@dataclass
class TrainingLog:
    """The curves of one log file."""

    path: Path
    loss: Curve = field(default_factory=Curve)
    lr: Curve = field(default_factory=Curve)
    train_top1: Curve = field(default_factory=Curve)
    val_top1: Curve = field(default_factory=Curve)
    val_top5: Curve = field(default_factory=Curve)
    val_mean_class: Curve = field(default_factory=Curve)
    records: int = 0

    @property
    def label(self) -> str:
        return self.path.name


def read_log(path: str | os.PathLike[str]) -> TrainingLog:
    """Read a ``log.jsonl`` / upstream ``log.json``; errors name the file and line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlotLogError(f"cannot read the log {p}: {exc.strerror or exc}") from exc
    train: list[tuple[int, dict[str, Any]]] = []
    val: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlotLogError(
                f"{p}, line {number}: not a JSON record ({exc.msg}); the log must hold one JSON object per line"
            ) from exc
        if not isinstance(record, dict) or "mode" not in record:
            continue  # upstream's first line: env_info, seed, config
        if record["mode"] not in ("train", "val") or not isinstance(record.get("epoch"), int):
            raise PlotLogError(
                f"{p}, line {number}: a record needs 'mode' 'train' or 'val' and an integer 'epoch', got "
                f"mode {record.get('mode')!r}, epoch {record.get('epoch')!r}"
            )
        (train if record["mode"] == "train" else val).append((number, record))
    log = TrainingLog(path=p, records=len(train) + len(val))
    if not log.records:
        raise PlotLogError(f"{p} has no train or val records (lines with a 'mode' key); is it a training log?")
    iters = [r["iter"] for _, r in train if isinstance(r.get("iter"), int) and r["iter"] > 0]
    per_epoch = max(iters, default=1)
    for _, r in train:
        x = r["epoch"] - 1 + (r.get("iter") or per_epoch) / per_epoch
        log.loss.add(x, r.get("loss", r.get("loss_cls")))
        log.lr.add(x, r.get("lr"))
        log.train_top1.add(x, r.get("top1_acc"))
    for _, r in val:
        x = float(r["epoch"])
        log.val_top1.add(x, r.get("top1_acc"))
        log.val_top5.add(x, r.get("top5_acc"))
        log.val_mean_class.add(x, r.get("mean_class_accuracy"))
    return log


def _import_matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(f"plotting logs needs matplotlib, which is not installed: {PLOT_EXTRA_HINT}") from exc
    return Figure, FigureCanvasAgg


def plot_logs(
    log: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    against: str | os.PathLike[str] | None = None,
    size: tuple[int, int] = (1500, 450),
    dpi: int = 100,
    title: str | None = None,
) -> Path:
    """Draw loss, lr and accuracy of ``log`` (and of the upstream log ``against``, dashed) into the PNG ``out``,
    ``size`` = (width, height) pixels. Returns ``out``."""
    width, height = size
    if width < 200 or height < 150 or dpi < 10:
        raise PlotLogError(f"a figure of {width}x{height} pixels at {dpi} dpi is too small; use at least 200x150")
    ours = read_log(log)
    logs: Sequence[tuple[TrainingLog, str, str]] = [(ours, "ours", "-")]
    if against is not None:
        logs = [*logs, (read_log(against), "upstream", "--")]
    Figure, FigureCanvasAgg = _import_matplotlib()
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_loss, ax_lr, ax_acc = fig.subplots(1, 3)
    colours = {"ours": "tab:blue", "upstream": "tab:orange"}
    for curves, who, style in logs:
        c = colours[who]
        name = f"{who} ({curves.label})"
        ax_loss.plot(curves.loss.x, curves.loss.y, style, color=c, linewidth=1, label=name)
        ax_lr.plot(curves.lr.x, curves.lr.y, style, color=c, linewidth=1.5, label=name)
        ax_acc.plot(curves.train_top1.x, curves.train_top1.y, style, color=c, linewidth=0.8, alpha=0.45,
                    label=f"{who} train top-1")  # fmt: skip
        ax_acc.plot(curves.val_top1.x, curves.val_top1.y, style, color=c, marker="o", markersize=4,
                    label=f"{who} val top-1")  # fmt: skip
        if curves.val_top5.y:
            ax_acc.plot(curves.val_top5.x, curves.val_top5.y, ":", color=c, marker="^", markersize=4,
                        label=f"{who} val top-5")  # fmt: skip
    for ax, what in ((ax_loss, "loss"), (ax_lr, "learning rate"), (ax_acc, "accuracy")):
        ax.set_title(what)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    fig.suptitle(title or ours.label)
    fig.tight_layout()
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png", dpi=dpi)
    return out_path
