"""`slowonly-zoo plot-log`: training curves from a synthetic trainer log and a synthetic upstream log.json.

The logs have the keys of upstream's published ``*.log.json`` (first line environment info, as upstream's).
The PNG must be a real PNG of the asked size whose curves are drawn: pixels of "ours" (matplotlib's tab:blue) and,
with ``--against``, of "upstream" (tab:orange) are counted.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slowonly_zoo.cli import main
from slowonly_zoo.training.plot import PlotLogError, read_log

BLUE = (31, 119, 180)  # tab:blue, "ours"
ORANGE = (255, 127, 14)  # tab:orange, "upstream"


def _write_log(path: Path, *, epochs: int, iters: int, loss0: float, env_line: bool) -> Path:
    lines = []
    if env_line:
        lines.append(json.dumps({"env_info": "sys.platform: linux", "seed": 0, "config": "..."}))
    for epoch in range(1, epochs + 1):
        for it in range(5, iters + 1, 5):
            progress = (epoch - 1 + it / iters) / epochs
            lr = 0.05 * (1 + math.cos(math.pi * progress))
            loss = loss0 * math.exp(-2 * progress)
            lines.append(json.dumps({
                "mode": "train", "epoch": epoch, "iter": it, "lr": lr, "memory": 3168, "data_time": 0.01,
                "time": 0.5, "loss_cls": loss, "loss": loss, "grad_norm": 4.2, "top1_acc": 1 - loss / 6,
                "top5_acc": 1 - loss / 12,
            }))  # fmt: skip
        lines.append(json.dumps({
            "mode": "val", "epoch": epoch, "iter": iters, "lr": lr, "top1_acc": 0.3 + 0.1 * epoch,
            "top5_acc": 0.6 + 0.05 * epoch, "mean_class_accuracy": 0.25 + 0.1 * epoch,
        }))  # fmt: skip
        lines.append("")  # blank lines are allowed
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _colour_pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    a = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).sum(axis=2) <= 30).sum())


@pytest.fixture()
def logs(tmp_path: Path) -> tuple[Path, Path]:
    ours = _write_log(tmp_path / "log.jsonl", epochs=4, iters=40, loss0=5.5, env_line=False)
    upstream = _write_log(tmp_path / "20200817_001411.log.json", epochs=4, iters=40, loss0=6.0, env_line=True)
    return ours, upstream


def test_read_log_places_records_in_epochs(logs) -> None:
    ours, upstream = logs
    log = read_log(upstream)  # the env line is skipped
    assert log.records == 4 * 8 + 4
    assert log.loss.x[0] == pytest.approx(5 / 40) and log.loss.x[-1] == pytest.approx(4.0)
    assert log.val_top1.x == [1.0, 2.0, 3.0, 4.0] and log.val_top1.y == pytest.approx([0.4, 0.5, 0.6, 0.7])
    assert log.lr.y[0] > log.lr.y[-1] and len(log.val_mean_class.y) == 4
    assert read_log(ours).records == log.records


def test_plot_log_draws_ours_beside_upstream(logs, tmp_path: Path, capsys) -> None:
    ours, upstream = logs
    png = tmp_path / "plots" / "curves.png"
    assert main(["plot-log", str(ours), "--against", str(upstream), "--out", str(png), "--size", "1200x400"]) == 0
    assert f"wrote {png} (1200x400)" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (1200, 400)
    assert _colour_pixels(png, BLUE) > 500 and _colour_pixels(png, ORANGE) > 500

    alone = tmp_path / "alone.png"
    assert main(["plot-log", str(ours), "--out", str(alone), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [1500, 450] and report["logs"] == {str(ours): 36}
    with Image.open(alone) as im:
        assert im.size == (1500, 450)
    assert _colour_pixels(alone, BLUE) > 500 and _colour_pixels(alone, ORANGE) == 0


def test_plot_log_errors(tmp_path: Path, logs, capsys, monkeypatch) -> None:
    ours, _ = logs
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"mode": "train", "epoch": 1, "iter": 5, "loss": 1.0}\n{"mode": "train", "epo\n')
    assert main(["plot-log", str(bad), "--out", str(tmp_path / "x.png")]) == 1
    assert f"{bad}, line 2: not a JSON record" in capsys.readouterr().err
    empty = tmp_path / "env_only.json"
    empty.write_text('{"env_info": "x"}\n')
    with pytest.raises(PlotLogError, match="has no train or val records"):
        read_log(empty)
    assert main(["plot-log", str(ours), "--out", str(tmp_path / "x.png"), "--size", "big"]) == 1
    assert "--size must be WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["plot-log", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.png")]) == 1
    assert "cannot read the log" in capsys.readouterr().err
    # without matplotlib: the error says how to install it
    for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["plot-log", str(ours), "--out", str(tmp_path / "x.png")]) == 1
    assert "pip install 'slowonly-zoo[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
