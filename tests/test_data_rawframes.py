"""Frame folders: JPEG decoding bit-exact with upstream's cv2.imdecode, flow stacking, frame counts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from mm_pipeline import synthetic_frame, write_flow_folder, write_rgb_folder

from slowonly_zoo.data.decode import read_frames
from slowonly_zoo.data.rawframes import FrameReadError, count_rawframes, decode_image, read_flow_frames, read_rgb_frames


def test_rgb_jpeg_decode_equals_cv2_imdecode(tmp_path, shared_videos):
    frames = read_frames(shared_videos / "chaplin.mp4", [0, 100])
    folder = write_rgb_folder(tmp_path / "rgb", frames)
    ours = read_rgb_frames(folder, [1, 2, 2])
    for k, idx in enumerate([1, 2, 2]):
        ref = cv2.imdecode(np.fromfile(folder / f"img_{idx:05}.jpg", np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        assert np.array_equal(ours[k], ref)


def test_odd_size_and_quality_and_gray_as_color(tmp_path):
    img = synthetic_frame(7, 99, 175)
    for q in (50, 95):
        cv2.imwrite(str(tmp_path / f"c{q}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, q])
        ref = cv2.imread(str(tmp_path / f"c{q}.jpg"), cv2.IMREAD_COLOR)[..., ::-1]
        assert np.array_equal(decode_image(tmp_path / f"c{q}.jpg", "RGB"), ref)
        # a colour JPEG read as a flow (grayscale) frame: libjpeg's luma, like IMREAD_GRAYSCALE
        gray_ref = cv2.imread(str(tmp_path / f"c{q}.jpg"), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(decode_image(tmp_path / f"c{q}.jpg", "L"), gray_ref)
    cv2.imwrite(str(tmp_path / "g.jpg"), img[..., 0])
    assert np.array_equal(
        decode_image(tmp_path / "g.jpg", "RGB"), cv2.imread(str(tmp_path / "g.jpg"), cv2.IMREAD_COLOR)[..., ::-1]
    )


def test_flow_frames_x_then_y(tmp_path):
    folder = write_flow_folder(tmp_path / "flow", 4, 48, 64)
    flow = read_flow_frames(folder, [2, 4])
    assert flow.shape == (2, 48, 64, 2)
    for k, idx in enumerate([2, 4]):
        x = cv2.imread(str(folder / f"x_{idx:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        y = cv2.imread(str(folder / f"y_{idx:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(flow[k, ..., 0], x) and np.array_equal(flow[k, ..., 1], y)


def test_missing_or_corrupt_frame_raises_with_path(tmp_path):
    folder = write_flow_folder(tmp_path / "flow", 2, 16, 16)
    with pytest.raises(FrameReadError, match="x_00003.jpg"):
        read_flow_frames(folder, [3])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "img_00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FrameReadError, match="img_00001.jpg"):
        read_rgb_frames(tmp_path / "bad", [1])


def test_count_rawframes_layouts(tmp_path):
    rgb = write_rgb_folder(tmp_path / "rgb", np.zeros((5, 8, 8, 3), np.uint8))
    assert count_rawframes(rgb) == 5
    jester = write_rgb_folder(tmp_path / "jester", np.zeros((4, 8, 8, 3), np.uint8), tmpl="{:05}.jpg")
    assert count_rawframes(jester, "{:05}.jpg") == 4
    flow = write_flow_folder(tmp_path / "flow", 6, 8, 8)
    assert count_rawframes(flow, "{}_{:05d}.jpg", "flow") == 6
    # GYM99: img_ (N) + x_/y_ (N - 1) in one folder; generate_file_list.py writes len(listdir) // 3 for both
    gym = write_rgb_folder(tmp_path / "gym", np.zeros((10, 8, 8, 3), np.uint8))
    write_flow_folder(gym, 9, 8, 8)
    assert count_rawframes(gym, "img_{:05}.jpg", "rgb") == (10 + 18) // 3 == 9
    assert count_rawframes(gym, "{}_{:05d}.jpg", "flow") == 9
    with pytest.raises(FrameReadError):
        count_rawframes(tmp_path / "nope")


def test_find_rgb_template_and_frame_folders(tmp_path):
    from slowonly_zoo.data.rawframes import find_rgb_template, is_frame_folder

    def folder(name: str, files: list[str]):
        d = tmp_path / name
        d.mkdir()
        for f in files:
            (d / f).write_bytes(b"")
        return d

    plain = folder("plain", ["00001.jpg", "00002.jpg"])  # sthv1 / Jester layout
    assert find_rgb_template(plain) == ("{:05}.jpg", 1)
    zero = folder("zero", ["img_00000.jpg"])  # only a frame 0: found after every template numbered from 1
    assert find_rgb_template(zero) == ("img_{:05}.jpg", 0)
    own = folder("own", ["frame1.jpg", "00001.jpg"])
    assert find_rgb_template(own, preferred="frame{}.jpg") == ("frame{}.jpg", 1)  # the protocol's own first
    assert find_rgb_template(folder("none", ["a.jpg"])) is None
    assert is_frame_folder(plain) and is_frame_folder(folder("png", ["x.PNG"]))
    assert not is_frame_folder(folder("videos", ["a.mp4"])) and not is_frame_folder(plain / "00001.jpg")
