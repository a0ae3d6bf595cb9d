"""The trainer learns: a short run on 8 tiny generated clips of 2 classes (different motion) reaches 100% accuracy
on its training clips and a loss under 10% of its start; validation, the work dir and a checkpoint round trip
(``create_model`` on the ``.pth`` and the ``.safetensors``, mmaction2 loading the ``.pth``) work."""

from __future__ import annotations

import json

import pytest
import torch
from train_clips import ENTRY, SIZE, make_clips, tiny_options, tiny_recipe

import slowonly_zoo
from slowonly_zoo.index.recipes import CropRanges
from slowonly_zoo.training.trainer import LOG_KEYS_TRAIN, TrainOptions, fit
from slowonly_zoo.weights.checkpoint import read_weights_file

EPOCHS = 24  # seed 0 reaches 100% train and val accuracy (val, with BN in eval mode after 24 steps, is seed-sensitive)


@pytest.mark.slow
def test_short_run_learns_and_checkpoints_round_trip(tmp_path, one_thread):
    root = tmp_path / "clips"
    make_clips(root)  # root/class0/*.mp4, root/class1/*.mp4: the folder-per-class layout
    work = tmp_path / "work"
    lines: list[str] = []
    result = fit(
        TrainOptions(
            name=ENTRY,
            data_root=root,
            ann_file=None,
            val_ann_file=root,
            work_dir=work,
            init="scratch",
            epochs=EPOCHS,
            batch_size=8,
            lr=0.1,
            num_workers=0,
            recipe=tiny_recipe(dropout=0.0, crop=CropRanges(area=(0.9, 1.0))),
            val_interval=EPOCHS,
            save_interval=EPOCHS,
        ),
        print_fn=lines.append,
    )
    assert result.class_names == ("class0", "class1")
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["mode"] == "train"]
    val = [r for r in records if r["mode"] == "val"]
    assert len(train) == EPOCHS and [r["epoch"] for r in train] == list(range(1, EPOCHS + 1))
    upstream_keys = "mode epoch iter lr memory data_time top1_acc top5_acc loss_cls loss grad_norm time".split()  # noqa: SIM905
    assert list(train[0]) == upstream_keys and tuple(upstream_keys) == LOG_KEYS_TRAIN  # upstream log.json's order
    first, last = train[0]["loss"], train[-1]["loss"]
    assert last < 0.1 * first, [round(r["loss"], 4) for r in train]
    assert train[-1]["top1_acc"] == 1.0
    # validation on the training clips (val pipeline: 1 clip, centre crop; BN in eval mode): all correct
    assert result.last_val == {"top1": 100.0, "top5": 100.0, "mean_class_accuracy": 100.0}
    assert val == [
        {
            "mode": "val",
            "epoch": EPOCHS,
            "iter": 1,
            "lr": val[0]["lr"],
            "top1_acc": 1.0,
            "top5_acc": 1.0,
            "mean_class_accuracy": 1.0,
        }
    ]
    assert any("val: top-1 100.00" in line for line in lines)
    assert any(line.startswith("lr 0.1 (--lr)") for line in lines)

    # the work dir
    names = {p.name for p in work.iterdir()}
    assert {f"epoch_{EPOCHS}.safetensors", f"epoch_{EPOCHS}.pth", "best.safetensors", "latest.pt"} <= names
    assert {"recipe.json", "log.jsonl"} <= names
    snapshot = json.loads((work / "recipe.json").read_text())
    assert snapshot["model"] == ENTRY and snapshot["effective"]["class_names"] == ["class0", "class1"]
    assert snapshot["recipe"]["out_size"] == SIZE

    # round trip: create_model on both files gives the trained weights and the class names
    trained = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    clip = torch.randn(2, 3, 4, SIZE, SIZE)
    result.model.eval()
    with torch.no_grad():
        expected = result.model(clip)
    for path in (work / f"epoch_{EPOCHS}.pth", work / f"epoch_{EPOCHS}.safetensors", work / "best.safetensors"):
        assert read_weights_file(path).class_names == ("class0", "class1")
        model = slowonly_zoo.create_model(ENTRY, checkpoint_path=path)  # the 2-way head the file records
        loaded = model.state_dict()
        assert loaded.keys() == trained.keys()
        assert all(torch.equal(loaded[k], trained[k]) for k in trained), path
        assert model.pretrained_cfg["label_names"] == ("class0", "class1")
        with torch.no_grad():
            torch.testing.assert_close(model(clip), expected, rtol=0, atol=0)

    # mmaction2 loads the .pth strictly (upstream keys) and computes the same logits
    from mmengine.runner import load_checkpoint
    from reference import build_mmaction_recognizer, mmaction_logits

    upstream = build_mmaction_recognizer(num_classes=2)
    checkpoint = load_checkpoint(upstream, str(work / f"epoch_{EPOCHS}.pth"), map_location="cpu", strict=True)
    assert checkpoint["meta"]["class_names"] == ["class0", "class1"]
    assert checkpoint["meta"]["epoch"] == EPOCHS and checkpoint["meta"]["model"] == ENTRY
    _, logits = mmaction_logits(upstream, clip)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_corrupt_video_trains_on_counted_and_reported(tmp_path, one_thread, caplog):
    root = tmp_path / "clips"
    ann, rows = make_clips(root, per_class=2)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 8)
    ann.write_text(ann.read_text() + "corrupt.mp4 1\n")
    lines: list[str] = []
    with caplog.at_level("WARNING", logger="slowonly_zoo.training"):
        options = tiny_options(root, tmp_path / "work", ann_file=ann, num_classes=2, batch_size=5, lr=0.01)
        result = fit(options, print_fn=lines.append)
    assert result.iters_done == 1 and result.epochs_done == 1
    assert [b.id for b in result.bad_samples] == ["corrupt.mp4"]
    assert "VideoDecodeError" in result.bad_samples[0].error
    assert any("1 unreadable training sample(s) replaced" in line for line in lines)
    assert any("corrupt.mp4" in line and "VideoDecodeError" in line for line in lines)
    assert any("corrupt.mp4" in r.getMessage() for r in caplog.records)
    assert sorted(result.epoch_indices[0]) == list(range(len(rows) + 1))  # its slot was filled by a replacement


def test_init_from_a_checkpoint_replaces_the_head_explicitly(tmp_path, one_thread):
    from slowonly_zoo.factory import build_architecture
    from slowonly_zoo.index import get_model_info
    from slowonly_zoo.training.checkpoints import CheckpointMeta, WorkDir

    source = build_architecture(get_model_info(ENTRY), num_classes=2)
    _, pth = WorkDir(tmp_path / "pre").save_epoch(source.state_dict(), CheckpointMeta(ENTRY, 1, 1, 2, ("a", "b")))
    root = tmp_path / "clips"
    ann, _ = make_clips(root, per_class=1)
    ann.write_text("class0/clip0.mp4 0\nclass1/clip0.mp4 2\n")
    lines: list[str] = []
    options = tiny_options(root, tmp_path / "work", ann_file=ann, num_classes=3, init=str(pth), batch_size=2, lr=1e-6)
    result = fit(options, print_fn=lines.append)
    assert any(f"init: checkpoint {pth}; head replaced (2 -> 3 classes" in line for line in lines), lines
    assert result.model.num_classes == 3
    trained = result.model.state_dict()
    # the backbone came from the checkpoint (one tiny step later it is still within 1e-3 of it)
    start = source.state_dict()
    torch.testing.assert_close(
        trained["backbone.stem.conv.weight"], start["backbone.stem.conv.weight"], atol=1e-3, rtol=0
    )
