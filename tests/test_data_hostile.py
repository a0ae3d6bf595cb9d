"""Hostile and broken input is counted as failed with a reason, never evaluated or silently shortened.

Truncated videos (real files written with PyAV, cut at several points, decoded for real), annotation lists with a
byte-order mark, CRLF, trailing spaces, repeated ids, labels outside the model, glob characters in ids, non-UTF-8
lists and file names, non-finite scores, and index entries whose numbers are out of range.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import decord
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from slowonly_zoo.data.annotations import Annotation, read_annotations
from slowonly_zoo.data.dataset import TestDataset
from slowonly_zoo.data.decode import VideoDecodeError, VideoFile
from slowonly_zoo.data.formats import resolve_source
from slowonly_zoo.errors import AnnotationError, BadInputError, ModelIndexError
from slowonly_zoo.evaluation.metrics import compute_metrics
from slowonly_zoo.evaluation.runner import evaluate
from slowonly_zoo.index import get_model_info
from slowonly_zoo.index.schema import entry_to_index, parse_index_text

VIDEO_MODEL = "slowonly_r50_4x16x1_k400_video"


def write_video(path: Path, frames: int, fmt: str = "mp4", codec: str = "libx264", faststart: bool = True) -> Path:
    """A real clip of random 64x48 frames at 25 fps (MP4 with its index at the front by default)."""
    options = {"movflags": "+faststart"} if fmt == "mp4" and faststart else {}
    rng = np.random.default_rng(frames)
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile_clips")
    return {
        "mp4": write_video(d / "full.mp4", 280),
        "avi": write_video(d / "full.avi", 100, fmt="avi", codec="mpeg4"),
        "mkv": write_video(d / "full.mkv", 100, fmt="matroska"),
        "webm": write_video(d / "full.webm", 60, fmt="webm", codec="libvpx-vp9"),
    }


# ------------------------------------------------------------------------------------------------ truncated videos


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_mp4_with_front_index_is_refused_with_the_shortfall(clips, tmp_path, fraction):
    """Cut at 50%, the MP4 still opens and demuxes 140 packets; its index declares 280 frames. It must not pass
    as a 140-frame video (that samples other frames and changes the scores)."""
    short = cut(clips["mp4"], tmp_path / "cut.mp4", fraction)
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4.*truncated: the container declares 280 frames") as info:
        VideoFile(short)
    present = int(str(info.value).split("holds only ")[1].split()[0])
    assert 0 < present < 280
    with pytest.raises(decord.DECORDError):  # upstream's decoder refuses the file too
        decord.VideoReader(str(short), num_threads=1)


@pytest.mark.parametrize("kind", ["avi", "mkv", "webm"])
def test_truncated_avi_and_matroska_are_refused(clips, tmp_path, kind):
    """AVI declares its frame count in the header; Matroska/WebM declare none, so their duration x rate is the
    estimate (see data/decode.py)."""
    short = cut(clips[kind], tmp_path / f"cut.{kind}", 0.5)
    with pytest.raises(VideoDecodeError, match="truncated"):
        VideoFile(short)


@pytest.mark.parametrize("kind", ["mp4", "avi", "mkv", "webm"])
def test_complete_files_are_not_flagged(clips, kind):
    with VideoFile(clips[kind]) as video:
        n = len(video)
        assert video.read([0, n - 1]).shape == (2, 48, 64, 3)


def test_matroska_with_a_longer_audio_track_is_not_flagged(tmp_path):
    """The estimate uses the video track's own duration (2 s), not the container's (4 s, the audio's)."""
    path = tmp_path / "av.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        for _ in range(50):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        for k in range(40):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1600
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    with av.open(str(path)) as container:
        assert container.duration == 4_000_000  # the premise: the container lasts as long as its audio
    with VideoFile(path) as clip:
        assert len(clip) == 50


def test_zero_decodable_frames_and_zero_bytes(clips, tmp_path):
    """Every packet present but the data destroyed: the decoder yields no frame and the video fails."""
    data = bytearray(clips["mp4"].read_bytes())
    start = data.index(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    zeroed = tmp_path / "zeroed.mp4"
    zeroed.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match="zeroed.mp4"), VideoFile(zeroed) as video:
        video.read([0])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="0 bytes"):
        VideoFile(empty)


def test_truncated_video_is_a_failed_sample_in_verify(clips, tmp_path):
    """verify's dataset records the truncated video as failed (with the shortfall) and keeps the good one."""
    (tmp_path / "good.mp4").symlink_to(clips["mp4"])
    cut(clips["mp4"], tmp_path / "half.mp4", 0.5)
    ann = tmp_path / "list.txt"
    ann.write_text("good.mp4 1\nhalf.mp4 2\n")
    protocol = get_model_info(VIDEO_MODEL).protocol
    ds = TestDataset(protocol, ann, tmp_path, normalize=False)
    good, half = ds[0], ds[1]
    assert good.error is None and good.views is not None
    assert half.views is None and "truncated" in str(half.error) and "280" in str(half.error)


@pytest.fixture(scope="module")
def random_model():
    from slowonly_zoo import create_model

    torch.manual_seed(0)
    return create_model(VIDEO_MODEL, pretrained=False).eval()


def test_predict_and_extract_count_truncated_and_handle_non_utf8_names(clips, tmp_path, random_model):
    """predict and extract fail the truncated video with the shortfall; a file name that is not UTF-8 works in
    both (extract stores it with \\xNN escapes in its metadata)."""
    from slowonly_zoo.features import extract
    from slowonly_zoo.inference import Predictor

    half = cut(clips["mp4"], tmp_path / "half.mp4", 0.5)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/clip_\xff\xfe.mp4"))
    write_video(odd, 16)
    predictor = Predictor(random_model, clips=1, device="cpu")
    with pytest.raises(VideoDecodeError, match="truncated"):
        predictor.predict_one(half)
    assert predictor.predict_one(odd).num_views == 1
    summary = extract(random_model, [half, odd], tmp_path / "out", clips=1, device="cpu")
    assert [s for s, _ in summary.failed] == [str(half)] and "truncated" in summary.failed[0][1]
    assert len(summary.written) == 1
    data = summary.written[0].read_bytes()  # safetensors' own reader refuses a non-UTF-8 path
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"]["source"].endswith("clip_\\xff\\xfe.mp4")


def test_non_finite_model_scores_fail_predict_and_extract(clips, tmp_path, random_model):
    from slowonly_zoo.features import extract
    from slowonly_zoo.inference import InferenceError, Predictor

    broken = create_broken(random_model)
    (tmp_path / "a.mp4").symlink_to(clips["mp4"])
    with pytest.raises(InferenceError, match="not finite"):
        Predictor(broken, clips=1, device="cpu").predict_one(tmp_path / "a.mp4")
    summary = extract(broken, [tmp_path / "a.mp4"], tmp_path / "out", clips=1, device="cpu")
    assert not summary.written and "not finite" in summary.failed[0][1]


def create_broken(model: nn.Module) -> nn.Module:
    import copy

    broken = copy.deepcopy(model)
    with torch.no_grad():
        next(p for n, p in broken.named_parameters() if ".stem." in f".{n}").fill_(float("nan"))
    return broken


# ------------------------------------------------------------------------------------------------ annotation lists


def test_bom_crlf_cr_and_trailing_spaces_read_like_a_plain_list(tmp_path):
    plain = [Annotation("a.mp4", 1), Annotation("b.mp4", 2), Annotation("c.mp4", 3)]
    variants = {
        "bom": "\ufeffa.mp4 1\nb.mp4 2\nc.mp4 3\n".encode(),
        "crlf": b"a.mp4 1\r\nb.mp4 2\r\nc.mp4 3\r\n",
        "cr": b"a.mp4 1\rb.mp4 2\rc.mp4 3",
        "bom_crlf_trailing": "\ufeffa.mp4 1  \r\nb.mp4\t2 \t\r\n\r\nc.mp4 3   ".encode(),
    }
    for name, data in variants.items():
        path = tmp_path / f"{name}.txt"
        path.write_bytes(data)
        got = read_annotations(path)
        assert got == plain, name
        assert got[0].id == "a.mp4"  # no "\ufeffa.mp4" that is then "not found"


def test_bom_list_first_video_is_found(tmp_path, clips):
    (tmp_path / "a.mp4").symlink_to(clips["mp4"])
    ann = tmp_path / "list.txt"
    ann.write_bytes("\ufeffa.mp4 0\r\n".encode())
    ds = TestDataset(get_model_info(VIDEO_MODEL).protocol, ann, tmp_path, normalize=False)
    assert ds.resolve(ds.annotations[0]) == tmp_path / "a.mp4" and (tmp_path / "a.mp4").exists()


def test_repeated_id_is_refused_naming_both_lines(tmp_path):
    ann = tmp_path / "dup.txt"
    ann.write_text("a.mp4 1\nb.mp4 2\n\na.mp4 1\n")
    with pytest.raises(AnnotationError, match=r"dup\.txt, line 4: 'a.mp4' is already listed on line 1"):
        read_annotations(ann)
    with pytest.raises(AnnotationError, match="already listed"):
        TestDataset(get_model_info(VIDEO_MODEL), ann, tmp_path)
    frames = tmp_path / "dup_frames.txt"
    frames.write_text("v1 10 1\nv1 12 1\n")
    with pytest.raises(AnnotationError, match="line 2"):
        read_annotations(frames)


def test_label_outside_the_model_is_refused_at_the_line(tmp_path):
    ann = tmp_path / "labels.txt"
    ann.write_text("a.mp4 399\nb.mp4 400\n")
    assert [a.label for a in read_annotations(ann)] == [399, 400]  # no model given: nothing to check against
    with pytest.raises(AnnotationError, match=r"labels\.txt, line 2: label 400 is outside 0\.\.399"):
        read_annotations(ann, num_classes=400)
    with pytest.raises(AnnotationError, match="line 2: label 400"):
        TestDataset(get_model_info(VIDEO_MODEL), ann, tmp_path)  # verify's dataset: the entry's 400 classes


def test_non_utf8_list_names_the_line(tmp_path):
    ann = tmp_path / "latin1.txt"
    ann.write_bytes(b"a.mp4 1\ncaf\xe9.mp4 2\n")
    with pytest.raises(AnnotationError, match=r"latin1\.txt, line 2: not UTF-8"):
        read_annotations(ann)


def test_training_and_input_lists_share_the_reader(tmp_path):
    """Training's list reader and predict/extract's list files read text as annotation lists do: a byte-order mark
    (even on a blank first line) and CRLF ends neither crash nor shift the line numbers in messages."""
    from slowonly_zoo.inputs import read_input_list
    from slowonly_zoo.training.data import TrainDataError, read_train_list

    train = tmp_path / "train.txt"
    train.write_bytes("\ufeff\r\na.mp4 1\r\nb.mp4 9\r\n".encode())
    with pytest.raises(TrainDataError, match=r"train\.txt, line 3: label 9"):
        read_train_list(train, num_classes=5)
    assert [i.line for i in read_train_list(train, num_classes=10)] == [2, 3]
    inputs = tmp_path / "inputs.txt"
    inputs.write_bytes("\ufeffa.mp4 1\r\n# comment\r\nsub/b.mp4\r\n".encode())
    assert read_input_list(inputs) == [tmp_path / "a.mp4", tmp_path / "sub" / "b.mp4"]


def test_ids_are_literal_not_glob_patterns(tmp_path):
    for name in ("abc.mp4", "a[b]c.mp4", "axc.mkv"):
        (tmp_path / name).write_bytes(b"x")
    assert resolve_source(tmp_path, "a*") == tmp_path / "a*"  # not abc.mp4: no such video
    assert not resolve_source(tmp_path, "a?c").exists()
    assert resolve_source(tmp_path, "a[b]c") == tmp_path / "a[b]c.mp4"
    assert resolve_source(tmp_path, "abc") == tmp_path / "abc.mp4"
    (tmp_path / "UP.MP4").write_bytes(b"x")
    (tmp_path / "mixed.Mp4").write_bytes(b"x")
    assert resolve_source(tmp_path, "UP").name == "UP.MP4"
    assert resolve_source(tmp_path, "mixed") == tmp_path / "mixed.Mp4"
    (tmp_path / "abc.webm").write_bytes(b"x")
    with pytest.raises(ValueError, match="matches 2 videos"):
        resolve_source(tmp_path, "abc")


def test_glob_id_is_a_missing_video_in_verify(tmp_path, clips):
    (tmp_path / "other.mp4").symlink_to(clips["mp4"])
    ann = tmp_path / "list.txt"
    ann.write_text("o* 0\n")
    sample = TestDataset(get_model_info(VIDEO_MODEL).protocol, ann, tmp_path, normalize=False)[0]
    assert sample.views is None and "not found" in str(sample.error)


# ------------------------------------------------------------------------------------------------ scores


class _Item:
    def __init__(self, sid: str, label: int, value: float) -> None:
        self.id, self.label, self.error = sid, label, None
        self.views = torch.full((2, 1, 1, 1, 1), value)


class _Listed:
    def __init__(self, items: list[_Item]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> _Item:
        return self.items[i]


class _Echo(nn.Module):
    """Logits [x, 0, 0]: class 0 wins for x > 0; a NaN / inf input gives NaN / inf probabilities."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.reshape(x.shape[0], -1)[:, :1]
        return torch.cat([v, torch.zeros_like(v), torch.zeros_like(v)], dim=1)


def test_non_finite_scores_and_foreign_labels_fail_the_video(tmp_path):
    items = [
        _Item("good", 0, 5.0),
        _Item("nan", 0, float("nan")),
        _Item("inf", 0, float("inf")),
        _Item("label9", 9, 5.0),
        _Item("miss", 1, 5.0),
    ]
    result = evaluate(_Echo(), _Listed(items), out_dir=tmp_path / "run", num_workers=0, device="cpu")
    failed = dict(result.failed)
    assert set(failed) == {"nan", "inf", "label9"}
    assert "not finite" in failed["nan"] and "NaN" in failed["nan"]
    assert "not finite" in failed["inf"]
    assert "label 9 is outside the model's 3 classes" in failed["label9"]
    assert result.table.ids.tolist() == ["good", "miss"]
    assert result.metrics is not None and result.metrics["top1"] == 50.0
    with pytest.raises(BadInputError, match="'nan'.*not finite"):
        evaluate(_Echo(), _Listed(items), out_dir=tmp_path / "strict", num_workers=0, device="cpu", strict=True)


def test_fusion_fails_videos_with_non_finite_scores():
    from slowonly_zoo.evaluation.fusion import fuse_tables
    from slowonly_zoo.evaluation.scores import ScoreTable

    ids, labels = np.array(["a", "b", "c"]), np.array([0, 1, 0])
    rgb = ScoreTable(ids, labels, np.array([[0.9, 0.1], [np.nan, 0.5], [0.6, 0.4]], np.float32))
    flow = ScoreTable(ids, labels, np.array([[0.7, 0.3], [0.2, 0.8], [0.1, np.inf]], np.float32))
    fused = fuse_tables([rgb, flow], names=["rgb", "flow"])
    assert fused.ids.tolist() == ["a"] and np.isfinite(fused.scores).all()
    assert dict(fused.failed) == {
        "b": "the scores in rgb are not finite (NaN or infinite)",
        "c": "the scores in flow are not finite (NaN or infinite)",
    }


def test_metrics_refuse_non_finite_scores_and_foreign_labels():
    scores = np.array([[0.9, 0.1], [np.nan, 0.5]])
    with pytest.raises(ValueError, match="not finite"):
        compute_metrics(scores, np.array([0, 1]))
    with pytest.raises(ValueError, match="label 2"):
        compute_metrics(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 2]))


# ------------------------------------------------------------------------------------------------ index ranges


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("Test Protocol", "Num Clips", 0),
        ("Test Protocol", "Crop Size", -224),
        ("Test Protocol", "Crop Size", 0),
        ("Test Protocol", "Resize Short", -1),
        ("Test Protocol", "Clip Len", 0),
        ("Test Protocol", "Frame Interval", 0),
        ("Test Protocol", "Start Index", -1),
        ("Test Protocol", "Std", [58.395, 0.0, 57.375]),
        ("Architecture", "Frame Interval", -8),
    ],
)
def test_index_ranges_are_checked_at_load(section, key, value):
    data = entry_to_index(get_model_info(VIDEO_MODEL))
    data["Name"] = "my_entry"
    data.pop("Alias", None)
    data[section][key] = value
    text = yaml.safe_dump({"Models": [data]}, sort_keys=False)
    with pytest.raises(ModelIndexError, match=rf"'my_entry'.*{section} '{key}'") as info:
        parse_index_text(text, "extra.yml")
    assert "extra.yml" in str(info.value)
