"""``results.json`` and the printed reported-vs-measured table of ``slowonly-zoo verify``, and its verdict.

Verdict rule (:func:`judge`):

* ``"failed"`` when no video could be evaluated at all;
* ``"not judged"`` when only part of the list was evaluated (``--limit``) or the index has no reported numbers;
* otherwise ``"passed"`` when every reported metric (top-1, top-5, mean class accuracy, or mean average precision
  for multi-label entries; whichever the source gives) is within :data:`DEFAULT_TOLERANCE` percentage points of the
  measured one, else ``"failed"``.

Why 0.5 points: with the same videos, the exact protocol and the released weights, the remaining differences are
floating-point order and decoder details, worth a few hundredths of a point; missing or re-encoded videos (a Kinetics
copy is never exactly upstream's: videos disappear from YouTube, 256p vs 320p sources) move the numbers by tenths. A
difference above half a point means the data or the setup differs materially and deserves a look. Videos that could
not be read are left out of the metrics and listed; the summary says how many.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fileio import atomic_write_text

if TYPE_CHECKING:
    from ..index import ModelEntry
    from .runner import EvalResult

__all__ = [
    "DEFAULT_TOLERANCE",
    "RESULTS_FILE",
    "build_report",
    "environment",
    "exit_status",
    "format_summary",
    "judge",
    "write_report",
]

DEFAULT_TOLERANCE = 0.5
"""Largest |measured - reported| (percentage points) on every reported metric for a verification to pass."""

RESULTS_FILE = "results.json"

METRICS = (
    ("top1", "top-1 accuracy"),
    ("top5", "top-5 accuracy"),
    ("mean_class_accuracy", "mean class accuracy"),
    ("mean_average_precision", "mean average precision"),  # multi-label entries (FAIR's Charades)
)

_PACKAGES = ("slowonly-zoo", "torch", "numpy", "av", "opencv-python-headless", "opencv-python", "safetensors")


def environment(device: str | None = None) -> dict[str, Any]:
    """Versions and hardware that produced a result (for ``results.json``)."""
    versions: dict[str, str] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if device and device.startswith("cuda") and torch.cuda.is_available():
            idx = torch.device(device).index or 0
            env["gpu"] = torch.cuda.get_device_name(idx)
            env["cuda"] = torch.version.cuda
            env["cudnn"] = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - the environment block is informative only
        pass
    return env


def _metric_keys(entry: ModelEntry) -> list[str]:
    """The metrics an entry is judged on: mean average precision for multi-label protocols, else the accuracies."""
    multi_label = entry.protocol is not None and entry.protocol.metric == "mAP"
    return ["mean_average_precision"] if multi_label else [k for k, _ in METRICS if k != "mean_average_precision"]


def _reported(entry: ModelEntry) -> dict[str, float | None]:
    row = entry.results[0] if entry.results else None
    return {key: (None if row is None else getattr(row, key)) for key in _metric_keys(entry)}


def judge(
    measured: dict[str, float] | None,
    reported: dict[str, float | None],
    *,
    complete: bool,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[str, str]:
    """``(verdict, reason)``: verdict is ``"passed"``, ``"failed"`` or ``"not judged"`` (module docstring)."""
    if measured is None:
        return "failed", "no video could be evaluated (see the failed videos)"
    if not complete:
        return "not judged", "only part of the annotation list was evaluated (--limit)"
    pairs = {k: (r, measured[k]) for k, _ in METRICS if (r := reported.get(k)) is not None and k in measured}
    if not pairs:
        return "not judged", "the model index has no reported numbers for this model"
    off = {k: m - r for k, (r, m) in pairs.items() if abs(m - r) > tolerance + 1e-9}
    if off:
        worst = max(off, key=lambda k: abs(off[k]))
        label = dict(METRICS)[worst]
        return "failed", f"{label} differs from the reported value by {off[worst]:+.2f} points (tolerance {tolerance})"
    return "passed", f"every reported metric within {tolerance} points"


def build_report(result: EvalResult, entry: ModelEntry, *, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """The content of ``results.json`` for ``result`` of ``entry``."""
    reported = _reported(entry)
    measured = result.metrics
    complete = result.num_selected == result.num_listed
    verdict, reason = judge(measured, reported, complete=complete, tolerance=tolerance)
    delta = {
        k: (None if measured is None or (r := reported[k]) is None or k not in measured else round(measured[k] - r, 6))
        for k in reported
    }
    settings = dict(result.settings)
    row = entry.results[0] if entry.results else None
    return {
        "model": entry.name,
        "dataset": entry.dataset,
        "verdict": verdict,
        "verdict_reason": reason,
        "tolerance_points": tolerance,
        "reported": reported,
        "reported_source": row.source if row is not None else None,
        "measured": measured,
        "delta": delta,
        "videos": {
            "listed": result.num_listed,
            "selected": result.num_selected,
            "evaluated": result.num_evaluated,
            "failed": result.num_failed,
            "resumed": result.num_resumed,
            "failed_videos": [{"id": i, "reason": r} for i, r in result.failed],
        },
        "checkpoint": {"path": settings.pop("checkpoint", None), "sha256": settings.pop("checkpoint_sha256", None)},
        "protocol": settings.pop("protocol", None),
        "members": settings.pop("members", None),
        "data": {k: settings.pop(k, None) for k in ("ann_file", "data_root", "format", "sampling", "limit")},
        "run": {
            "device": result.device,
            "world_size": result.world_size,
            "seconds": round(result.seconds, 3),
            "videos_per_second": round(result.videos_per_second, 4),
            **settings,
        },
        "scores_file": str(result.scores_path),
        "environment": environment(result.device),
    }


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report`` to ``out_dir/results.json`` (atomically); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    return atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def format_summary(report: dict[str, Any], *, max_failed: int = 10) -> str:
    """The human summary: reported vs measured table, video counts, failures, verdict."""
    run = report.get("run", {})
    world = run.get("world_size", 1)
    lines = [
        f"{report['model']} on {report.get('dataset') or '?'} "
        f"({run.get('device', '?')}, {run.get('dtype', 'float32')}, {world} process{'es' if world != 1 else ''})",
        f"{'metric':<22}{'reported':>10}{'measured':>10}{'delta':>9}",
    ]
    measured = report.get("measured") or {}
    for key, label in METRICS:
        rep = report["reported"].get(key)
        mea = measured.get(key)
        if rep is None and mea is None:
            continue
        lines.append(f"{label:<22}{_fmt(rep):>10}{_fmt(mea):>10}{_fmt(report['delta'].get(key), True):>9}")
    v = report["videos"]
    counts = f"videos: {v['listed']} listed"
    if v["selected"] != v["listed"]:
        counts += f", first {v['selected']} selected"
    counts += f", {v['evaluated']} evaluated, {v['failed']} failed"
    if v.get("resumed"):
        counts += f" ({v['resumed']} from an earlier run)"
    lines.append(counts)
    if v["failed"]:
        lines.append("failed videos (not in the metrics):")
        for item in v["failed_videos"][:max_failed]:
            lines.append(f"  {item['id']}: {item['reason']}")
        if v["failed"] > max_failed:
            lines.append(f"  ... and {v['failed'] - max_failed} more (all listed in results.json)")
    if run.get("videos_per_second"):
        lines.append(f"speed: {run['videos_per_second']:.2f} videos/s")
    lines.append(f"verdict: {report['verdict'].upper()}: {report['verdict_reason']}")
    lines.append(f"scores: {report['scores_file']}")
    return "\n".join(lines)


def exit_status(result_or_report: EvalResult | dict[str, Any]) -> int:
    """Process exit status for ``slowonly-zoo verify``: 1 when the verdict is ``"failed"``, else 0."""
    report = result_or_report if isinstance(result_or_report, dict) else result_or_report.report
    if report is None:
        raise ValueError("this result has no report; exit_status needs the EvalResult returned by verify()")
    return 1 if report.get("verdict") == "failed" else 0
