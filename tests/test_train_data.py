"""Training data (``slowonly_zoo.training.data``): annotation and folder sources, their errors, per-sample RNG
independent of the DataLoader's workers, bad videos replaced deterministically, the val dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_clips import SIZE, make_clips

from slowonly_zoo.errors import SlowOnlyZooError
from slowonly_zoo.training.data import (
    TrainDataError,
    TrainDataset,
    ValDataset,
    class_folder_items,
    load_items,
    read_train_list,
    sample_rng,
    train_collate,
)
from slowonly_zoo.training.trainer import PipelineTransform
from slowonly_zoo.training.transforms import TrainPipeline


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train_clips")
    ann, _ = make_clips(root)
    return root, ann


def _pipeline() -> TrainPipeline:
    return TrainPipeline(4, 1, resize_short=None, out_size=SIZE, area_range=(0.3, 1.0))


def test_empty_list_names_file_and_line(tmp_path):
    ann = tmp_path / "train.txt"
    ann.write_text("\n  \n")
    with pytest.raises(TrainDataError, match=r"train\.txt, line 1: the annotation list is empty") as info:
        read_train_list(ann, num_classes=2)
    assert isinstance(info.value, SlowOnlyZooError) and isinstance(info.value, ValueError)


def test_label_outside_num_classes_names_file_and_line(tmp_path):
    ann = tmp_path / "train.txt"
    ann.write_text("a.mp4 0\n\nb.mp4 1\n   \nc.mp4 2\n")  # blank lines still count as lines
    with pytest.raises(TrainDataError, match=r"train\.txt, line 5: label 2 of 'c\.mp4' is outside 0\.\.1"):
        read_train_list(ann, num_classes=2)
    items = read_train_list(ann, num_classes=3)
    assert [(i.id, i.label, i.line) for i in items] == [("a.mp4", 0, 1), ("b.mp4", 1, 3), ("c.mp4", 2, 5)]


def test_malformed_line_and_missing_list(tmp_path):
    ann = tmp_path / "bad.txt"
    ann.write_text("a.mp4 0\nb.mp4 x\n")
    with pytest.raises(TrainDataError, match=r"bad\.txt, line 2"):
        read_train_list(ann, num_classes=2)
    with pytest.raises(TrainDataError, match="annotation file not found"):
        read_train_list(tmp_path / "nope.txt", num_classes=2)


def test_rawframe_list_keeps_total_frames(tmp_path):
    ann = tmp_path / "frames.txt"
    ann.write_text("v1 40 1\nv2 12 0\n")
    items = read_train_list(ann, num_classes=2)
    assert [(i.id, i.total_frames, i.label) for i in items] == [("v1", 40, 1), ("v2", 12, 0)]


def test_folder_per_class_layout(tmp_path):
    for cls, names in {"walk": ["b.mp4", "a.avi"], "jump": ["x.mp4"], "run": []}.items():
        (tmp_path / cls).mkdir()
        for n in names:
            (tmp_path / cls / n).write_bytes(b"")
    (tmp_path / "walk" / "frames_dir").mkdir()  # a frame folder is a sample too
    (tmp_path / "walk" / "notes.txt").write_text("not a video")
    items, names = class_folder_items(tmp_path)
    assert names == ("jump", "run", "walk")
    assert [(i.id, i.label) for i in items] == [
        ("jump/x.mp4", 0),
        ("walk/a.avi", 2),
        ("walk/b.mp4", 2),
        ("walk/frames_dir", 2),
    ]
    items2, names2 = load_items(None, tmp_path, num_classes=None)
    assert names2 == names and items2 == items
    with pytest.raises(TrainDataError, match="3 class folders but the model has 2 classes"):
        load_items(None, tmp_path, num_classes=2)
    with pytest.raises(TrainDataError, match="not among the training classes"):
        class_folder_items(tmp_path, class_names=("jump", "walk"))


def test_sample_rng_is_a_function_of_seed_epoch_index():
    a = sample_rng(0, 1, 5).random(4)
    assert np.array_equal(a, sample_rng(0, 1, 5).random(4))
    for other in (sample_rng(1, 1, 5), sample_rng(0, 2, 5), sample_rng(0, 1, 6), sample_rng(0, 1, 5, 1)):
        assert not np.array_equal(a, other.random(4))


def _stream(dataset: TrainDataset, num_workers: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dataset.set_epoch(epoch)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=3, sampler=sampler, num_workers=num_workers, collate_fn=train_collate
    )
    return [(b.clips, b.indices) for b in loader]


def test_sample_stream_does_not_depend_on_workers(clips):
    root, ann = clips
    dataset = TrainDataset(read_train_list(ann, 2), root, PipelineTransform(_pipeline()), seed=7)
    serial = _stream(dataset, 0, epoch=1)
    parallel = _stream(dataset, 2, epoch=1)
    assert len(serial) == 3
    for (c0, i0), (c1, i1) in zip(serial, parallel, strict=True):
        assert torch.equal(i0, i1) and torch.equal(c0, c1)
    other_epoch = _stream(dataset, 0, epoch=2)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(serial, other_epoch, strict=True))
    assert serial[0][0].shape == (3, 3, 4, SIZE, SIZE) and serial[0][0].dtype == torch.float32


def test_bad_video_is_replaced_deterministically_and_reported(clips, tmp_path):
    root, _ = clips
    (tmp_path / "class0").mkdir()
    for p in (root / "class0").iterdir():
        (tmp_path / "class0" / p.name).symlink_to(p)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    (tmp_path / "list.txt").write_text("class0/clip0.mp4 0\nbroken.mp4 1\nmissing.mp4 1\nclass0/clip1.mp4 0\n")
    items = read_train_list(tmp_path / "list.txt", 2)
    dataset = TrainDataset(items, tmp_path, PipelineTransform(_pipeline()), seed=0)
    for index, name in ((1, "broken.mp4"), (2, "missing.mp4")):
        sample = dataset[index]
        again = dataset[index]
        assert torch.equal(sample.clip, again.clip) and sample.bad == again.bad
        assert sample.index == index and sample.bad[0].id == name and sample.bad[0].index == index
        assert sample.bad[-1].replaced_by in (0, 3)  # the replacement that loaded is a good item
        assert "VideoDecodeError" in sample.bad[0].error or "not found" in sample.bad[0].error
        assert sample.label == items[sample.bad[-1].replaced_by].label
    batch = train_collate([dataset[0], dataset[1], dataset[2]])
    assert [b.id for b in batch.bad][:1] == ["broken.mp4"] and "missing.mp4" in [b.id for b in batch.bad]
    assert dataset[0].bad == ()


def test_all_samples_bad_is_an_error(tmp_path):
    (tmp_path / "list.txt").write_text("a.mp4 0\nb.mp4 1\n")
    dataset = TrainDataset(read_train_list(tmp_path / "list.txt", 2), tmp_path, PipelineTransform(_pipeline()))
    with pytest.raises(TrainDataError, match="could not be loaded"):
        dataset[0]


def test_val_dataset_is_one_centre_clip(clips):
    from slowonly_zoo.index import get_model_info

    root, ann = clips
    protocol = get_model_info("slowonly_r50_8x8x1_k400").protocol
    import dataclasses

    protocol = dataclasses.replace(protocol, clip_len=4, frame_interval=1, resize_short=None, crop_size=24)
    val = ValDataset(protocol, read_train_list(ann, 2), root)
    sample = val[0]
    assert sample.error is None and sample.views.shape == (1, 3, 4, 24, 24)
    assert val.protocol.num_clips == 1 and val.protocol.crop == "center"


def test_trainer_reads_train_and_val_class_folders_from_their_own_roots(clips, tmp_path):
    """A folder-per-class validation set elsewhere than the training data: its items resolve under its folder."""
    from train_clips import ENTRY, tiny_recipe

    from slowonly_zoo.training.trainer import Trainer, TrainOptions

    root, _ = clips
    val = tmp_path / "val"
    for cls in ("class0", "class1"):
        (val / cls).mkdir(parents=True)
        (val / cls / "v.mp4").symlink_to(root / cls / "clip3.mp4")
    trainer = Trainer(
        TrainOptions(name=ENTRY, data_root=root, val_ann_file=val, work_dir=tmp_path / "w", recipe=tiny_recipe()),
        print_fn=None,
    )
    trainer._setup_data()
    assert trainer.class_names == ("class0", "class1") and trainer.num_classes == 2
    assert len(trainer.dataset) == 8 and trainer.dataset[0].bad == ()
    dataset = ValDataset(trainer.val_protocol, trainer.val_items, trainer.val_root)
    assert [dataset[i].error for i in range(len(dataset))] == [None, None]
    assert [item.label for item in trainer.val_items] == [0, 1]
