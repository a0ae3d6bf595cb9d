"""``--test-best``: at the end of a run, ``verify``'s full test protocol on ``best.safetensors``, its report in the
work dir. A tiny entry (the 8x8x1 K400 entry with a 1-clip, centre-crop, 32-pixel test protocol equal to the tiny
recipe's val pipeline) trains on 8 generated clips of 2 classes; the test must load the 2-way head from
``best.safetensors`` alone and reproduce the best epoch's validation numbers, since both pipelines are the same;
``slowonly-zoo predict --checkpoint best.safetensors`` then prints the class names the checkpoint records."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from train_clips import ENTRY, SIZE, make_clips, tiny_options, tiny_recipe

from slowonly_zoo.cli import main
from slowonly_zoo.errors import TrainError
from slowonly_zoo.evaluation import verify
from slowonly_zoo.index import get_model_info, register_model_entry
from slowonly_zoo.training import fit

TINY = "slowonly_r50_tiny_test_best"
_TINY_RECIPE = tiny_recipe(dropout=0.0)


def _register_tiny() -> str:
    base = get_model_info(ENTRY)
    assert base.protocol is not None and base.architecture is not None
    recipe = _TINY_RECIPE
    clip = {"clip_len": recipe.sampling.clip_len, "frame_interval": recipe.sampling.frame_interval}
    protocol = dataclasses.replace(base.protocol, num_clips=1, crop="center", crop_size=SIZE, resize_short=None, **clip)
    architecture = dataclasses.replace(base.architecture, **clip)
    tiny = dataclasses.replace(
        base, name=TINY, aliases=(), architecture=architecture, protocol=protocol, train_recipe=recipe, checkpoint=None
    )
    register_model_entry(tiny)
    return TINY


@pytest.mark.slow  # ~10 s: a 2-epoch run and three verify passes
def test_test_best_runs_verify_on_the_best_checkpoint(tmp_path, one_thread, capsys):
    name = _register_tiny()
    root = tmp_path / "clips"
    make_clips(root, per_class=4)
    work = tmp_path / "work"
    lines: list[str] = []
    # folder per class for validation: the test list is written into the work dir
    options = tiny_options(root, work, name=name, recipe=_TINY_RECIPE, epochs=2, batch_size=8, lr=0.1)
    result = fit(
        dataclasses.replace(options, val_ann_file=root, val_interval=1, save_interval=1, test_best=True),
        print_fn=lines.append,
    )
    assert result.test is not None and result.test.report is not None
    assert result.best_top1 is not None
    # the same clips, frames and preprocessing as validation, on the best epoch's weights: the same numbers
    assert result.test.metrics is not None
    assert result.test.metrics["top1"] == pytest.approx(result.best_top1, abs=1e-9)
    assert result.test.num_listed == 8
    listing = (work / "test_best" / "test_list.txt").read_text().splitlines()
    assert sorted(listing) == [f"class{c}/clip{k}.mp4 {c}" for c in (0, 1) for k in range(4)]
    report = json.loads((work / "test_best" / "results.json").read_text())
    assert report["model"] == name
    assert report["measured"]["top1"] == pytest.approx(result.test.metrics["top1"])
    assert any(line.startswith(f"testing {work / 'best.safetensors'}") for line in lines), lines
    assert any(line.startswith(f"{name} on ") for line in lines), lines  # verify's printed summary
    # it tested the best epoch's weights, not the last epoch's: verify on each epoch's file gives its scores
    assert result.best_epoch is not None
    by_epoch = {
        epoch: verify(
            name, root, work / "test_best" / "test_list.txt", checkpoint=work / f"epoch_{epoch}.safetensors",
            out=tmp_path / f"verify_{epoch}", num_workers=0, print_fn=None,
        ).table.scores
        for epoch in (1, 2)
    }  # fmt: skip
    assert np.array_equal(result.test.table.scores, by_epoch[result.best_epoch])
    assert not np.array_equal(by_epoch[1], by_epoch[2])
    # predict on the fine-tuned checkpoint alone (no --num-classes) prints the class names it records
    assert (
        main(["predict", name, str(root / "class1" / "clip0.mp4"), "--checkpoint", str(work / "best.safetensors")]) == 0
    )
    printed = capsys.readouterr().out
    assert "class0  [0]" in printed and "class1  [1]" in printed, printed


def test_test_best_without_a_val_list_is_an_error_before_training(tmp_path):
    root = tmp_path / "clips"
    make_clips(root, per_class=1)
    with pytest.raises(TrainError, match="--test-best needs --val-ann-file"):
        fit(name=ENTRY, data_root=root, work_dir=tmp_path / "work", recipe=tiny_recipe(), test_best=True, print_fn=None)
    assert not (tmp_path / "work" / "log.jsonl").exists()
