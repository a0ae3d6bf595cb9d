"""The mmaction2 1.x checkpoints against mmaction2 1.2.0 itself (the test-only reference from PyPI).

For each 1.x entry, its own config from the 1.2.0 wheel (``mmaction/.mim/configs/recognition/slowonly/``) is read
with mmengine: its model, test pipeline and data preprocessor must be the entry's architecture and protocol; the
model mmaction2 builds from it, with random weights and BatchNorm statistics and saved in the upstream layout, has
the 0.x key layout and loads through ``create_model(name, checkpoint_path=...)`` to the same logits; and the
config's own test pipeline (decord decode, 1.x ``SampleFrames``, ``Resize``, ``ThreeCrop``, ``FormatShape``,
``PackActionInputs``) followed by its ``ActionDataPreprocessor`` gives the same views as the zoo's on a shared clip.
"""

from __future__ import annotations

import copy
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import import_mmaction, randomize_
from upstream_checkpoints import save_published

import slowonly_zoo
from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.factory import build_architecture
from slowonly_zoo.weights.convert import zoo_to_upstream

TOLERANCE = 1e-4  # max abs logit difference, fp32
MM1X = slowonly_zoo.list_models(provenance="mmaction2-1.x")


def _config_dir() -> Path:
    mmaction = import_mmaction()
    return Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "slowonly"


def _config(name: str):
    """The 1.2.0 wheel's config of entry ``name`` (mmengine ``Config``, ``_base_`` files merged)."""
    from mmengine.config import Config

    entry = slowonly_zoo.get_model_info(name)
    path = _config_dir() / Path(entry.config).name
    assert path.is_file(), f"{entry.config} is not in mmaction2 1.2.0's wheel"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Config.fromfile(str(path))


def _build_model(cfg) -> torch.nn.Module:
    """mmaction2's recognizer from ``cfg.model`` without the ImageNet download (weights are randomised anyway)."""
    from mmaction.registry import MODELS

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg["backbone"]["pretrained"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MODELS.build(model_cfg).eval()


def test_there_are_ten_1x_entries() -> None:
    assert len(MM1X) == 10


@pytest.mark.parametrize("name", MM1X)
def test_config_is_the_entry(name: str) -> None:
    """Architecture, head, normalisation and test pipeline of the 1.x config are what the index says."""
    entry = slowonly_zoo.get_model_info(name)
    arch, protocol = entry.architecture, entry.protocol
    cfg = _config(name)
    backbone, head, pre = cfg.model["backbone"], cfg.model["cls_head"], cfg.model["data_preprocessor"]
    assert backbone["type"] == "ResNet3dSlowOnly" and backbone["depth"] == arch.depth
    assert ("non_local" in backbone) == arch.non_local
    assert head["num_classes"] == entry.num_classes and head["average_clips"] == protocol.average_clips
    assert tuple(pre["mean"]) == protocol.mean and tuple(pre["std"]) == protocol.std
    assert pre["format_shape"] == "NCTHW"
    steps = {step["type"]: step for step in cfg.test_pipeline}
    assert list(steps) == [
        "DecordInit", "SampleFrames", "DecordDecode", "Resize", "ThreeCrop", "FormatShape", "PackActionInputs"
    ]  # fmt: skip
    sample = steps["SampleFrames"]
    assert sample["test_mode"] and "target_fps" not in sample and not sample.get("twice_sample", False)
    assert (sample["clip_len"], sample["frame_interval"], sample["num_clips"]) == (
        protocol.clip_len,
        protocol.frame_interval,
        protocol.num_clips,
    )
    assert tuple(steps["Resize"]["scale"]) == (-1, protocol.resize_short) and protocol.crop == "three"
    assert steps["ThreeCrop"]["crop_size"] == protocol.crop_size
    assert protocol.data_format == "video" and protocol.sampling == "mmaction1x"


@pytest.mark.slow
@pytest.mark.parametrize("name", MM1X)
def test_1x_model_loads_at_parity(name: str, tmp_path) -> None:
    """mmaction2 1.2.0's own model from the entry's config: same keys as 0.x's layout, same logits here."""
    seed = zlib.crc32(name.encode()) % 1000
    reference = randomize_(_build_model(_config(name)), seed)
    upstream = reference.state_dict()

    entry = slowonly_zoo.get_model_info(name)
    zero_x_layout = zoo_to_upstream(build_architecture(entry).state_dict())
    assert list(upstream) == list(zero_x_layout)  # names and order: the 0.x key layout
    assert all(upstream[k].shape == v.shape for k, v in zero_x_layout.items())

    path = save_published(upstream, tmp_path, f"{name}_upstream")
    model = slowonly_zoo.create_model(name, checkpoint_path=path)
    x = torch.randn((1, 3, 4, 64, 64), generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        ref_logits = reference.cls_head(reference.backbone(x))
        logits = model(x)
    assert ref_logits.shape == logits.shape == (1, entry.num_classes)
    assert ref_logits.std() > 0.05, "degenerate reference output: the comparison would check nothing"
    assert (logits - ref_logits).abs().max().item() <= TOLERANCE


def _mmaction_1x_views(name: str, video: Path) -> np.ndarray:
    """The config's own test pipeline and data preprocessor on ``video``: float32 views ``(V, C, T, H, W)``."""
    from mmaction.registry import MODELS, TRANSFORMS

    cfg = _config(name)
    results = dict(filename=str(video), start_index=0, modality="RGB", label=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in cfg.test_pipeline:
            step = dict(step)
            if step["type"] == "DecordInit":
                step["num_threads"] = 1
            results = TRANSFORMS.build(step)(results)
        preprocessor = MODELS.build(cfg.model["data_preprocessor"])
    data = preprocessor({"inputs": [results["inputs"]], "data_samples": [results["data_samples"]]}, training=False)
    return data["inputs"][0].numpy()


@pytest.mark.parametrize("name", ["slowonly_r50_4x16x1_k400_mm1x", "slowonly_r50_8x8x1_k710_mm1x"])
def test_views_equal_mmaction2_1x_test_pipeline(name: str, shared_videos: Path) -> None:
    """The zoo's test pipeline for a 1.x entry (no sampling option: the protocol picks 1.x's offsets)."""
    video = shared_videos / "arm_wrestling.mp4"
    ref = _mmaction_1x_views(name, video)
    pipeline = TestPipeline(slowonly_zoo.get_model_info(name).protocol, decode_thread=False)
    assert pipeline.sampling == "pyslowfast"
    ours = pipeline(video).numpy()
    assert ours.shape == ref.shape == (30, 3, pipeline.protocol.clip_len, 256, 256)
    diff = float(np.abs(ours - ref).max())
    print(f"{name}: max |view diff| vs mmaction2 1.2.0 = {diff:.2e}")
    assert diff <= 1e-4  # uint8 frames, OpenCV-exact resize: only the float normalisation may round differently


def test_0x_sampling_would_give_other_views(shared_videos: Path) -> None:
    """The comparison above can fail: the same entry under 0.x offsets differs from 1.x's pipeline."""
    name = "slowonly_r50_4x16x1_k400_mm1x"
    video = shared_videos / "arm_wrestling.mp4"
    ref = _mmaction_1x_views(name, video)
    ours = TestPipeline(slowonly_zoo.get_model_info(name).protocol, sampling="mmaction0x", decode_thread=False)(video)
    assert float(np.abs(ours.numpy() - ref).max()) > 0.1


def test_predict_and_verify_pipelines_use_the_1x_offsets(shared_videos: Path, tmp_path: Path) -> None:
    """``predict``'s input pipeline and ``verify``'s dataset take the sampling from the entry's protocol."""
    from slowonly_zoo.data.dataset import TestDataset
    from slowonly_zoo.inference import inference_protocol, input_pipeline

    video = shared_videos / "arm_wrestling.mp4"
    ann = tmp_path / "list.txt"
    ann.write_text(f"{video.name} 0\n")
    for name, sampling in (("slowonly_r50_8x8x1_k400_mm1x", "pyslowfast"), ("slowonly_r50_8x8x1_k400", "mmaction0x")):
        entry = slowonly_zoo.get_model_info(name)
        assert input_pipeline(inference_protocol(entry), entry, video).sampling == sampling
        assert input_pipeline(inference_protocol(entry, clips=2), entry, video).sampling == sampling
        assert TestDataset(entry, ann, shared_videos).pipeline.sampling == sampling
