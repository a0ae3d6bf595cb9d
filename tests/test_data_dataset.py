"""Annotation lists, TestDataset error handling and collation."""

from __future__ import annotations

import shutil

import pytest
import torch
from mm_pipeline import write_flow_folder

from slowonly_zoo.data.annotations import Annotation, AnnotationError, read_annotations
from slowonly_zoo.data.dataset import Sample, TestDataset, collate
from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.index import get_model_info


def test_read_video_rawframe_and_k400_lists(tmp_path):
    (tmp_path / "v.txt").write_text("a/x.mp4 3\n\nb/y.avi 0\n")
    assert read_annotations(tmp_path / "v.txt") == [Annotation("a/x.mp4", 3), Annotation("b/y.avi", 0)]
    (tmp_path / "r.txt").write_text("cls/vid_000010_000020 300 12\n")
    assert read_annotations(tmp_path / "r.txt") == [Annotation("cls/vid_000010_000020", 12, 300)]
    (tmp_path / "k.txt").write_text("abcdefghijk, 250, 5\nlmnopqrstuv,300,399\n")
    assert read_annotations(tmp_path / "k.txt")[1] == Annotation("lmnopqrstuv", 399, 300)


@pytest.mark.parametrize(
    ("text", "kind", "line", "reason"),
    [
        ("a.mp4 1\nb.mp4\n", "auto", 2, "expected 2 fields"),
        ("a.mp4 x\n", "auto", 1, "label must be an integer"),
        ("d 10 1\nd2 ten 1\n", "auto", 2, "total_frames must be an integer"),
        ("a.mp4 1 2 3\n", "auto", 1, "got 4 fields"),
        ("a.mp4 1\n", "rawframes", 1, "expected 3 fields"),
        ("a.mp4 -1\n", "video", 1, "must not be negative"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, kind, line, reason):
    ann = tmp_path / "list.txt"
    ann.write_text(text)
    with pytest.raises(AnnotationError, match=reason) as info:
        read_annotations(ann, kind)
    assert info.value.line == line and info.value.path == str(ann)
    assert f"list.txt, line {line}" in str(info.value)


def test_dataset_videos_with_bad_files(tmp_path, shared_videos):
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    shutil.copy(shared_videos / "cleaning_pool_32f.mp4", root / "ok" / "clip.mp4")
    shutil.copy(shared_videos / "cleaning_pool_32f.mp4", root / "bare_id.mp4")
    (root / "empty.mp4").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(b"\x00\x01" * 3000)
    ann = tmp_path / "val.txt"
    ann.write_text(
        "ok/clip.mp4 62\nmissing.mp4 1\nempty.mp4 2\ngarbage.mp4 3\nbare_id 250 62\n".replace(
            "bare_id 250 62", "bare_id.mp4 62"
        )
    )
    entry = get_model_info("slowonly_r50_4x16x1_k400_video")
    ds = TestDataset(entry, ann, root)
    assert len(ds) == 5
    loader = torch.utils.data.DataLoader(ds, batch_size=5, collate_fn=collate, num_workers=0)
    (batch,) = list(loader)
    assert isinstance(batch, list) and all(isinstance(s, Sample) for s in batch)
    ok, missing, empty, garbage, bare = batch
    assert ok.error is None and ok.views.shape == (30, 3, 4, 256, 256) and ok.label == 62 and ok.id == "ok/clip.mp4"
    assert torch.equal(ok.views, TestPipeline(entry.protocol)(shared_videos / "cleaning_pool_32f.mp4"))
    assert missing.views is None and "not found" in missing.error
    assert empty.views is None and "empty" in empty.error
    assert garbage.views is None and "garbage.mp4" in garbage.error
    assert bare.error is None
    with pytest.raises(FileNotFoundError):
        TestDataset(entry, ann, root, strict=True)[1]


def test_dataset_k400_list_resolves_bare_ids(tmp_path, shared_videos):
    shutil.copy(shared_videos / "cleaning_pool_32f.mp4", tmp_path / "abc123.mp4")
    ann = tmp_path / "k400_val.txt"
    ann.write_text("abc123, 32, 62\n")
    ds = TestDataset(get_model_info("slowonly_r50_4x16x1_k400"), ann, tmp_path, source_format="video")
    sample = ds[0]
    assert sample.error is None and sample.views.shape[0] == 30


def test_dataset_gym99_rawframes_uses_listed_total_and_reports_missing_frames(tmp_path):
    root = tmp_path / "gym"
    write_flow_folder(root / "clip_a", 30, 64, 80)
    write_flow_folder(root / "clip_b", 3, 64, 80)
    ann = tmp_path / "gym99_val_list_rawframes.txt"
    ann.write_text("clip_a 30 7\nclip_b 30 8\n")  # clip_b's list says 30 but only 3 flow frames exist
    entry = get_model_info("slowonly_r50_4x16x1_gym99_flow")
    ds = TestDataset(entry, ann, root, source_format="rawframes")
    a, b = ds[0], ds[1]
    assert a.error is None and a.views.shape == (10, 2, 4, 256, 256)
    assert b.views is None and "x_000" in b.error


def test_dataset_in_dataloader_worker_processes(tmp_path, shared_videos):
    """The pipeline's worker threads also run inside DataLoader worker processes (forked), with the same views."""
    shutil.copy(shared_videos / "cleaning_pool_32f.mp4", tmp_path / "a.mp4")
    ann = tmp_path / "list.txt"
    ann.write_text("a.mp4 1\n")
    entry = get_model_info("slowonly_r50_4x16x1_k400_video")
    ds = TestDataset(entry, ann, tmp_path, normalize=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, collate_fn=collate, num_workers=1)
    (batch,) = list(loader)
    assert batch[0].error is None and batch[0].views.dtype == torch.uint8
    assert torch.equal(
        batch[0].views, TestPipeline(entry.protocol, normalize=False, decode_thread=False)(tmp_path / "a.mp4")
    )


def test_bare_ids_find_every_known_video_extension(tmp_path):
    """A list id without a suffix is looked up as ``id.*`` over the one list of video extensions."""
    from slowonly_zoo.data.formats import VIDEO_EXTENSIONS

    assert {".mp4", ".avi", ".webm", ".wmv", ".3gp", ".ts"} <= set(VIDEO_EXTENSIONS)
    (tmp_path / "clip.wmv").write_bytes(b"")
    (tmp_path / "clip.txt").write_bytes(b"")
    ds = TestDataset(get_model_info("slowonly_r50_4x16x1_k400"), tmp_path / "unused", tmp_path, annotations=[])
    assert ds.resolve(Annotation("clip", 0)) == tmp_path / "clip.wmv"
    with pytest.raises(ValueError, match="unknown source format 'folder'; choose one of auto, video, rawframes"):
        TestDataset(get_model_info("slowonly_r50_4x16x1_k400"), tmp_path, tmp_path, "folder", annotations=[])
    with pytest.raises(ValueError, match="unknown source format"):
        read_annotations(tmp_path / "clip.txt", source_format="videos")
