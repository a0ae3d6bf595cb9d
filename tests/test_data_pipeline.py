"""Per-video views of the test pipeline against mmaction2's own test pipeline (tests/mm_pipeline.py).

Every comparison is exact: the uint8 crops are identical and the float32 views equal to the last bit (max abs
difference 0.0), because decoding is frame-exact, the resize reproduces OpenCV's fixed-point arithmetic and the
normalisation reproduces mmcv's. Protocols come from the model index; the sampler is mmaction2 0.x's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mm_pipeline import mmaction_views, write_clip, write_flow_folder, write_rgb_folder
from reference0x import run_reference_0x

from slowonly_zoo.data.decode import read_frames
from slowonly_zoo.data.pipeline import TestPipeline, normalize_views
from slowonly_zoo.index import get_model_info

torch.set_num_threads(1)
REAL = ["archery.avi", "arm_wrestling.mp4", "chaplin.mp4", "cleaning_pool_32f.mp4"]


def protocol(name: str):
    return get_model_info(name).protocol


def assert_same_views(ours: torch.Tensor, ref: np.ndarray) -> None:
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == ref.shape
    diff = float(np.abs(ours.numpy() - ref).max())
    assert diff == 0.0, f"max abs difference {diff}"


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_rgb_video_protocol_real_clips(shared_videos, name):
    p = protocol("slowonly_r50_4x16x1_k400_video")
    views = TestPipeline(p)(shared_videos / name)
    assert views.shape == (30, 3, 4, 256, 256)
    assert_same_views(views, mmaction_views(p, shared_videos / name))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline_clips")
    return {
        "bframes_x264.mp4": write_clip(d / "bframes_x264.mp4", 176, 144, 70, options={"bf": "3", "g": "12"}),
        "portrait.mp4": write_clip(d / "portrait.mp4", 144, 256, 40),
        "odd_width.mp4": write_clip(d / "odd_width.mp4", 175, 100, 30, pix_fmt="yuv444p"),
        "short.mp4": write_clip(d / "short.mp4", 64, 48, 9),  # fewer frames than one 8x8 clip spans
        "bframes_mpeg4.avi": write_clip(
            d / "bframes_mpeg4.avi", 160, 120, 90, codec="mpeg4", max_b_frames=2, container_format="avi"
        ),
        "k600_256p.mp4": write_clip(d / "k600_256p.mp4", 288, 256, 40),
    }


@pytest.mark.parametrize("name", ["bframes_x264.mp4", "portrait.mp4", "odd_width.mp4", "short.mp4"])
def test_rgb_video_protocol_generated_clips(clips, name):
    p = protocol("slowonly_r50_8x8x1_k400")  # a rawframes entry evaluated on videos: start index 0 for videos
    views = TestPipeline(p)(clips[name])
    assert_same_views(views, mmaction_views(p, clips[name]))


def test_bframe_avi_matches_in_order_decode_not_decord_seeking(clips):
    """Upstream's DecordDecode seeks and returns wrong frames on this MPEG-4 AVI with B-frames; we match an in-order
    decode (mmaction2's own PyAVDecode), which is the correct frame content."""
    p = protocol("slowonly_r50_8x8x1_k400")
    path = clips["bframes_mpeg4.avi"]
    views = TestPipeline(p)(path)
    assert_same_views(views, mmaction_views(p, path, decoder="pyav"))
    assert np.abs(views.numpy() - mmaction_views(p, path, decoder="decord")).max() > 0.1


def test_rgb_rawframes_protocol(tmp_path, shared_videos):
    p = protocol("slowonly_r50_8x8x1_k400")
    frames = read_frames(shared_videos / "cleaning_pool_32f.mp4", range(32))
    folder = write_rgb_folder(tmp_path / "video_0001", frames)  # img_00001.jpg ..., written by cv2
    views = TestPipeline(p)(folder, total_frames=32)
    assert views.shape == (30, 3, 8, 256, 256)
    assert_same_views(views, mmaction_views(p, folder, total_frames=32))


def test_sthv1_protocol_128(tmp_path, shared_videos):
    p = protocol("slowonly_r50_8x4x1_sthv1")
    assert (p.resize_short, p.crop_size, p.filename_tmpl) == (128, 128, "{:05}.jpg")
    frames = read_frames(shared_videos / "archery.avi", range(0, 80, 2))
    folder = write_rgb_folder(tmp_path / "sth", frames, tmpl="{:05}.jpg")
    views = TestPipeline(p)(folder, total_frames=40)
    assert views.shape == (30, 3, 8, 128, 128)
    assert_same_views(views, mmaction_views(p, folder, total_frames=40))


def test_flow_rawframes_protocol(tmp_path):
    p = protocol("slowonly_r50_4x16x1_k400_flow")
    folder = write_flow_folder(tmp_path / "flow", 45, 240, 320)
    views = TestPipeline(p)(folder, total_frames=45)
    assert views.shape == (30, 2, 4, 256, 256)
    assert_same_views(views, mmaction_views(p, folder, total_frames=45))


@pytest.mark.slow
def test_flow_exact_2x_downscale_resizes_planes_like_0x(tmp_path):
    """512x640 -> 256x320 is an exact 2x downscale, where OpenCV's rounding depends on the channel count. mmaction2
    0.x (the code behind the reported numbers) decodes flow as separate x/y grey planes and resizes each
    (``RawFrameDecode`` in mmaction/datasets/pipelines/loading.py); 1.x stacks them first (a 2-channel resize that
    differs in about 1 pixel of 8). The views must equal 0.24.1's own test pipeline."""
    p = protocol("slowonly_r50_4x16x1_k400_flow")
    folder = write_flow_folder(tmp_path / "flow", 45, 512, 640)
    views = TestPipeline(p)(folder, total_frames=45)
    ref = run_reference_0x(
        """
        from mmaction.datasets.pipelines import Compose
        p = inputs["protocol"]
        pipeline = Compose([
            dict(type="SampleFrames", clip_len=p["clip_len"], frame_interval=p["frame_interval"],
                 num_clips=p["num_clips"], test_mode=True),
            dict(type="RawFrameDecode"),
            dict(type="Resize", scale=(-1, p["resize_short"])),
            dict(type="ThreeCrop", crop_size=p["crop_size"]),
            dict(type="Normalize", mean=list(p["mean"]), std=list(p["std"]), to_bgr=False),
            dict(type="FormatShape", input_format="NCTHW"),
        ])
        results = pipeline(dict(frame_dir=inputs["folder"], total_frames=45, label=0, start_index=1,
                                filename_tmpl=p["filename_tmpl"], modality="Flow"))
        outputs["views"] = torch.from_numpy(results["imgs"])
        """,
        tmp_path / "ref0x",
        {"folder": str(folder), "protocol": dataclasses.asdict(p)},
    )["views"]
    assert tuple(ref.shape) == tuple(views.shape) == (30, 2, 4, 256, 256)
    assert_same_views(views, ref.numpy())


def test_gym99_flow_center_crop_and_gym_frame_count(tmp_path):
    p = protocol("slowonly_r50_4x16x1_gym99_flow")
    assert p.crop == "center" and p.num_views == 10
    folder = write_rgb_folder(tmp_path / "gym", np.zeros((31, 240, 320, 3), np.uint8))
    write_flow_folder(folder, 30, 240, 320)
    pipe = TestPipeline(p)
    views = pipe(folder)  # no total given: len(listdir) // 3 like generate_file_list.py
    assert views.shape == (10, 2, 4, 256, 256)
    assert_same_views(views, mmaction_views(p, folder, total_frames=(31 + 60) // 3))


def test_k600_no_resize(clips, shared_videos):
    p = protocol("slowonly_r50_8x8x1_k600")
    assert p.resize_short is None
    for path in (clips["k600_256p.mp4"], shared_videos / "arm_wrestling.mp4"):
        assert_same_views(TestPipeline(p)(path), mmaction_views(p, path))
    with pytest.raises(ValueError, match="ThreeCrop"):  # upstream's ThreeCrop assertion: frames must be 256p
        TestPipeline(p)(clips["portrait.mp4"])


def test_pyslowfast_sampling_matches_mmaction2_1x(shared_videos):
    p = dataclasses.replace(protocol("slowonly_r50_4x16x1_k400"), num_clips=3)
    path = shared_videos / "arm_wrestling.mp4"  # 280 frames: 0.x offsets 36, 108, 180; 1.x 0, 116, 231
    ours = TestPipeline(p, sampling="pyslowfast")(path)
    assert_same_views(ours, mmaction_views(p, path, sampling="1x"))
    assert not torch.equal(ours, TestPipeline(p)(path))


def test_uint8_views_and_device_normalisation(shared_videos):
    p = protocol("slowonly_r50_4x16x1_k400")
    path = shared_videos / "cleaning_pool_32f.mp4"
    u8 = TestPipeline(p, normalize=False)(path)
    assert u8.dtype == torch.uint8
    assert np.array_equal(u8.numpy(), mmaction_views(p, path, normalize=False))
    assert torch.equal(normalize_views(u8, p), TestPipeline(p)(path))


def test_flow_protocol_rejects_video(shared_videos):
    with pytest.raises(ValueError, match="flow protocol"):
        TestPipeline(protocol("slowonly_r50_4x16x1_k400_flow"))(shared_videos / "archery.avi")


def test_frame_plan_replaces_the_test_sampling(shared_videos):
    """A frame plan passed in decides the clips (here 3 clips instead of the protocol's 10), with the same numbers
    as mmaction2's pipeline sampling those 3 clips; ``run`` reports the plan."""
    from slowonly_zoo.data.sampling import sample_frame_indices

    base = dataclasses.replace(protocol("slowonly_r50_4x16x1_k400_video"), crop="center")
    three = dataclasses.replace(base, num_clips=3)
    path = shared_videos / "arm_wrestling.mp4"

    def plan(total: int, start: int) -> np.ndarray:
        return sample_frame_indices(total, base.clip_len, base.frame_interval, 3, start)

    clip, views = TestPipeline(base, frame_plan=plan).run(path)
    assert views.shape == (3, 3, 4, 256, 256)
    assert clip.source_format == "video" and clip.start_index == 0
    assert np.array_equal(clip.indices, plan(clip.total_frames, 0))
    assert_same_views(views, mmaction_views(three, path))
    with pytest.raises(ValueError, match="frame plan must give"):
        TestPipeline(base, frame_plan=lambda total, start: np.arange(4))(path)
