#!/usr/bin/env python
"""Build slowonly-zoo's model index from mmaction2's SlowOnly README.

Usage::

    python tools/build_index.py path/to/slowonly_README.md > slowonly_zoo/model_index.yml

(the top-level ``model_index.yml`` is a symlink to that file). The output is deterministic: the committed file
is exactly this script's output, and ``tests/test_index.py`` regenerates it and compares byte for byte.

What comes from where:

* the README tables (every section): the rows, their metrics, resolutions, GPU columns, config names and
  checkpoint / log / json URLs. Each row is mapped to a model by the 8-hex SHA-256 prefix of its checkpoint
  file name; the row without a checkpoint (GYM99 "1: 1 Fusion") is the ensemble entry. The first row naming a
  checkpoint makes the entry, later rows naming the same file become extra reported results.
* the hand-kept tables below (facts the tables do not carry): canonical names, architecture and test protocol
  per upstream config (mmaction2 0.x ``configs/recognition/slowonly/*.py``), dataset / head size / label file
  (the configs' ``cls_head`` and ``tools/data/*/label_map*.txt``), parameter counts (counted on the built 0.x
  models) and the few aliases that are not in the README (OmniSource's first file names, from the slowonly
  ``metafile.yml``).
* mmaction2 1.x's re-trained checkpoints (``MM1X`` below): hand-kept from ``../shared/reference/mmaction2_1x/``
  (the 1.x README and metafile; tests/test_index_mm1x.py checks them against both), after the README's entries.
* FAIR's Slow R50 checkpoints (PySlowFast / pytorchvideo; ``FAIR`` below): hand-kept from
  ``../shared/reference/fair_slow_checkpoints.md``, appended after the README's entries.

The script fails, naming the row, on anything it cannot map (a new section, a new checkpoint, a row whose
backbone or input disagrees with the hand-kept facts), so README changes cannot slip through silently.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import yaml

# The records and recipes only (standard library + PyYAML): the package's index would load the very file this
# script writes.
from slowonly_zoo.index.recipes import (
    INIT_IMAGENET,
    INIT_SCRATCH,
    LrPolicy,
    TrainRecipe,
    TrainSampling,
    ValPipeline,
)
from slowonly_zoo.index.records import (
    FLOW_MEAN,
    FLOW_STD,
    RGB_MEAN,
    RGB_STD,
    Architecture,
    Checkpoint,
    ModelEntry,
    ReportedResult,
    TestProtocol,
)
from slowonly_zoo.index.schema import entry_to_index

COLLECTION = "SlowOnly"
CONFIG_DIR = "configs/recognition/slowonly/"
README_URL = "https://github.com/open-mmlab/mmaction2/blob/0.x/configs/recognition/slowonly/README.md"
CODE_URL = "https://github.com/open-mmlab/mmaction2/blob/0.x/mmaction/models/backbones/resnet3d_slowonly.py"

# --------------------------------------------------------------------------------------------------
# hand-kept facts
# --------------------------------------------------------------------------------------------------


class Canon(NamedTuple):
    name: str
    suffix: str | None  # SHA-256 prefix in the checkpoint file name; None for the ensemble
    config: str | None  # the upstream config (file stem) whose architecture and test pipeline apply


# The canonical names (what `slowonly-zoo list` shows). The OmniSource checkpoints have no config of their own; the
# slowonly metafile.yml maps them to the 4x16x1 R50 and the R101 config, whose architecture and protocol they share.
CANONICAL: tuple[Canon, ...] = (
    Canon("slowonly_r50_4x16x1_k400", "a69556c6", "slowonly_r50_4x16x1_256e_kinetics400_rgb"),
    Canon("slowonly_r50_4x16x1_k400_256p", "bea7701f", "slowonly_r50_4x16x1_256e_kinetics400_rgb"),
    Canon("slowonly_r50_8x8x1_k400", "a79c555a", "slowonly_r50_8x8x1_256e_kinetics400_rgb"),
    Canon("slowonly_r50_8x8x1_k400_256p", "75851a7d", "slowonly_r50_8x8x1_256e_kinetics400_rgb"),
    Canon("slowonly_r50_4x16x1_k400_video", "c9cdc656", "slowonly_r50_video_4x16x1_256e_kinetics400_rgb"),
    Canon("slowonly_r50_4x16x1_k400_in1k", "1e8fc736", "slowonly_imagenet_pretrained_r50_4x16x1_150e_kinetics400_rgb"),
    Canon("slowonly_r50_8x8x1_k400_in1k", "3f9ce182", "slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb"),
    Canon("slowonly_r50_nl_4x16x1_k400", "0d6e5a69", "slowonly_nl_embedded_gaussian_r50_4x16x1_150e_kinetics400_rgb"),
    Canon("slowonly_r50_nl_8x8x1_k400", "e8dd9e82", "slowonly_nl_embedded_gaussian_r50_8x8x1_150e_kinetics400_rgb"),
    Canon("slowonly_r50_4x16x1_k400_flow", "decb8568", "slowonly_r50_4x16x1_256e_kinetics400_flow"),
    Canon("slowonly_r50_8x8x1_k400_flow", "6b384243", "slowonly_r50_8x8x1_256e_kinetics400_flow"),
    Canon(
        "slowonly_r50_4x16x1_k400_340x256",
        "dadca1a3",
        "slowonly_r50_randomresizedcrop_340x256_4x16x1_256e_kinetics400_rgb",
    ),
    Canon("slowonly_r50_4x16x1_k400_omni", "51b1f7ea", "slowonly_r50_4x16x1_256e_kinetics400_rgb"),
    Canon("slowonly_r101_8x8x1_k400", "0c730aef", "slowonly_r101_8x8x1_196e_kinetics400_rgb"),
    Canon("slowonly_r101_8x8x1_k400_omni", "b5dbb701", "slowonly_r101_8x8x1_196e_kinetics400_rgb"),
    Canon("slowonly_r50_8x8x1_k600", "81e5153e", "slowonly_r50_video_8x8x1_256e_kinetics600_rgb"),
    Canon("slowonly_r50_8x8x1_k700", "9250f662", "slowonly_r50_video_8x8x1_256e_kinetics700_rgb"),
    Canon("slowonly_r50_4x16x1_gym99", "a9c34b54", "slowonly_imagenet_pretrained_r50_4x16x1_120e_gym99_rgb"),
    Canon("slowonly_r50_4x16x1_gym99_flow", "66ecdb3c", "slowonly_k400_pretrained_r50_4x16x1_120e_gym99_flow"),
    Canon("slowonly_r50_4x16x1_gym99_fusion", None, None),
    Canon("slowonly_r50_8x8x1_jester", "b56a5389", "slowonly_imagenet_pretrained_r50_8x8x1_64e_jester_rgb"),
    Canon("slowonly_r50_8x4x1_hmdb51_in1k", "16faeb6a", "slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb"),
    Canon("slowonly_r50_8x4x1_hmdb51_k400", "cee5f725", "slowonly_k400_pretrained_r50_8x4x1_40e_hmdb51_rgb"),
    Canon("slowonly_r50_8x4x1_ucf101_in1k", "181e1661", "slowonly_imagenet_pretrained_r50_8x4x1_64e_ucf101_rgb"),
    Canon("slowonly_r50_8x4x1_ucf101_k400", "ee8c850f", "slowonly_k400_pretrained_r50_8x4x1_40e_ucf101_rgb"),
    Canon("slowonly_r50_8x4x1_sthv1", "d034ff12", "slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb"),
)

# The README's "1: 1 Fusion" row: an ensemble of these canonical names with equal score weights.
FUSION = ("slowonly_r50_4x16x1_gym99_fusion", "GYM99", "1: 1 Fusion")
FUSION_MEMBERS = ("slowonly_r50_4x16x1_gym99", "slowonly_r50_4x16x1_gym99_flow")
FUSION_WEIGHTS = (1.0, 1.0)

# Names that several README rows use for different checkpoints resolve to the short-side-320 one.
AMBIGUOUS_OWNER = {
    "slowonly_r50_4x16x1_256e_kinetics400_rgb": "slowonly_r50_4x16x1_k400",
    "slowonly_r50_8x8x1_256e_kinetics400_rgb": "slowonly_r50_8x8x1_k400",
}

# Aliases the README does not show. The OmniSource checkpoints were first published under other file names
# (mmaction2 0.x slowonly README history; other bytes, hence other hash prefixes) and have no config: their current
# file name without the date and hash serves as a config-like name. Note: upstream's metafile names the k400-pretrained
# HMDB51 entry 'slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb' by mistake; that name stays with the
# ImageNet-pretrained HMDB51 model, whose config it is.
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "slowonly_r50_4x16x1_k400_omni": (
        "slowonly_r50_omni_4x16x1_kinetics400_rgb",
        "slowonly_OmniSource_kinetics400_se_rgb_r50_seg1_4x16_scratch-71f7b8ee",
    ),
    "slowonly_r101_8x8x1_k400": ("slowonly_r101_without_omni_8x8x1_kinetics400_rgb",),
    "slowonly_r101_8x8x1_k400_omni": (
        "slowonly_r101_omni_8x8x1_kinetics400_rgb",
        "slowonly_OmniSource_kinetics400_se_rgb_r101_seg1_8x8_scratch-2f838cb0",
    ),
}
PREVIOUS_FILENAMES: dict[str, tuple[str, ...]] = {
    "slowonly_r50_4x16x1_k400_omni": ("slowonly_OmniSource_kinetics400_se_rgb_r50_seg1_4x16_scratch-71f7b8ee.pth",),
    "slowonly_r101_8x8x1_k400_omni": ("slowonly_OmniSource_kinetics400_se_rgb_r101_seg1_8x8_scratch-2f838cb0.pth",),
}


class ConfigFacts(NamedTuple):
    """Architecture (``model.backbone``) and test pipeline (``test_pipeline``) of one upstream 0.x config."""

    depth: int
    non_local: bool
    modality: str  # 'rgb' | 'flow'
    with_pool1: bool
    clip_len: int
    frame_interval: int
    data_format: str  # 'rawframes' | 'video'
    filename_tmpl: str | None
    resize_short: int | None
    crop: str  # 'three' | 'center'
    crop_size: int


_RGB_RF = "img_{:05}.jpg"  # RawframeDataset default
_FLOW_RF = "{}_{:05d}.jpg"  # x_00001.jpg / y_00001.jpg
_PLAIN_RF = "{:05}.jpg"  # Jester, Something-Something V1

# fmt: off
CONFIG_FACTS: dict[str, ConfigFacts] = {
    # fields: depth, non_local, modality, with_pool1, clip_len, frame_interval, data_format, filename_tmpl,
    #         resize_short, crop, crop_size
    # Kinetics-400 RGB and flow
    "slowonly_r50_4x16x1_256e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_r50_video_4x16x1_256e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "video", None, 256, "three", 256),
    "slowonly_r50_8x8x1_256e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_imagenet_pretrained_r50_4x16x1_150e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_nl_embedded_gaussian_r50_4x16x1_150e_kinetics400_rgb":
        ConfigFacts(50, True, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_nl_embedded_gaussian_r50_8x8x1_150e_kinetics400_rgb":
        ConfigFacts(50, True, "rgb", True, 8, 8, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_r50_4x16x1_256e_kinetics400_flow":
        ConfigFacts(50, False, "flow", True, 4, 16, "rawframes", _FLOW_RF, 256, "three", 256),
    "slowonly_r50_8x8x1_256e_kinetics400_flow":
        ConfigFacts(50, False, "flow", True, 8, 8, "rawframes", _FLOW_RF, 256, "three", 256),
    "slowonly_r50_randomresizedcrop_340x256_4x16x1_256e_kinetics400_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_r101_8x8x1_196e_kinetics400_rgb":
        ConfigFacts(101, False, "rgb", True, 8, 8, "rawframes", _RGB_RF, 256, "three", 256),
    # K600 / K700: videos pre-resized to short side 256, no Resize at test time (their 0.x configs' test_pipeline)
    "slowonly_r50_video_8x8x1_256e_kinetics600_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "video", None, None, "three", 256),
    "slowonly_r50_video_8x8x1_256e_kinetics700_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "video", None, None, "three", 256),
    # GYM99: the flow model tests with CenterCrop (10 views; its 0.x config's test_pipeline)
    "slowonly_imagenet_pretrained_r50_4x16x1_120e_gym99_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_k400_pretrained_r50_4x16x1_120e_gym99_flow":
        ConfigFacts(50, False, "flow", True, 4, 16, "rawframes", _FLOW_RF, 256, "center", 256),
    # Jester: named 8x8x1 but samples 8 frames at interval 4 (its 0.x config's SampleFrames)
    "slowonly_imagenet_pretrained_r50_8x8x1_64e_jester_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 4, "rawframes", _PLAIN_RF, 256, "three", 256),
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 4, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_k400_pretrained_r50_8x4x1_40e_hmdb51_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 4, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_ucf101_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 4, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_k400_pretrained_r50_8x4x1_40e_ucf101_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 4, "rawframes", _RGB_RF, 256, "three", 256),
    # Something-Something V1: no stem max-pool, short side 128, ThreeCrop(128) (its 0.x config)
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb":
        ConfigFacts(50, False, "rgb", False, 8, 4, "rawframes", _PLAIN_RF, 128, "three", 128),
}
# fmt: on

NUM_CLIPS = 10  # every SlowOnly 0.x config's test SampleFrames
AVERAGE_CLIPS = "prob"  # every SlowOnly 0.x config's test_cfg


class DatasetFacts(NamedTuple):
    name: str
    num_classes: int  # head size of the released models (the configs' cls_head.num_classes)
    label_file: str  # inside the package (copies of mmaction2's tools/data/*/label_map*.txt)


DATASETS: dict[str, DatasetFacts] = {
    "k400": DatasetFacts("Kinetics-400", 400, "labels/kinetics400.txt"),
    "k600": DatasetFacts("Kinetics-600", 600, "labels/kinetics600.txt"),
    "k700": DatasetFacts("Kinetics-700", 700, "labels/kinetics700.txt"),
    # GYM99 configs never override num_classes: 400-way heads, 99 labels (the gym99 0.x configs)
    "gym99": DatasetFacts("GYM99", 400, "labels/gym99.txt"),
    "jester": DatasetFacts("Jester", 27, "labels/jester.txt"),
    "hmdb51": DatasetFacts("HMDB51", 51, "labels/hmdb51.txt"),
    "ucf101": DatasetFacts("UCF101", 101, "labels/ucf101.txt"),
    "sthv1": DatasetFacts("Something-Something V1", 174, "labels/sthv1.txt"),
}

# README section title -> dataset key. An unknown section stops the script.
SECTIONS: dict[str, str] = {
    "Kinetics-400": "k400",
    "Kinetics-400 Data Benchmark": "k400",
    "Kinetics-400 OmniSource Experiments": "k400",
    "Kinetics-600": "k600",
    "Kinetics-700": "k700",
    "GYM99": "gym99",
    "Jester": "jester",
    "HMDB51": "hmdb51",
    "UCF101": "ucf101",
    "Something-Something V1": "sthv1",
}

# README pretrain column -> index value
PRETRAIN = {"None": None, "ImageNet": "ImageNet", "Kinetics": "Kinetics-400", "Kinetics400": "Kinetics-400"}

# Parameter counts of the 400-class recognizers, counted on the built 0.x models. Other head sizes
# change only the fc layer: params = backbone + 2048 * K + K.
HEAD_IN = 2048
PARAMS_400: dict[tuple[int, bool, str], int] = {
    (50, False, "rgb"): 32_454_096,
    (50, False, "flow"): 32_450_960,
    (50, True, "rgb"): 39_808_464,
    (101, False, "rgb"): 60_359_120,
}


def param_count(depth: int, non_local: bool, modality: str, num_classes: int) -> int:
    backbone = PARAMS_400[(depth, non_local, modality)] - (HEAD_IN * 400 + 400)
    return backbone + HEAD_IN * num_classes + num_classes


# Train recipes per 0.x config, as mmcv 1.7.0's Config.fromfile resolves the configs of the mmaction2 0.24.1
# wheel (``mmaction/.mim/configs/recognition/slowonly/``; ../shared/reference/train_recipes.md).
# tests/test_train_recipes.py checks every field against those configs. Common to all: SGD momentum 0.9,
# weight decay 1e-4, RandomResizedCrop's default ranges, Flip(0.5), head dropout 0.5, log every 20 iterations,
# Resize(224, 224, keep_ratio=False) after the crop, one val clip (the TrainRecipe defaults).
class RecipeFacts(NamedTuple):
    videos_per_gpu: int
    lr: float  # for 8 GPUs x videos_per_gpu
    clip_max_norm: float
    schedule: LrPolicy
    epochs: int
    init: str  # 'scratch', 'imagenet' or the canonical name of the load_from checkpoint
    val_interval: int  # evaluation.interval
    save_interval: int  # checkpoint_config.interval
    resize_short: int | None = 256  # Resize(-1, 256) before RandomResizedCrop; None: none
    out_size: int = 224
    val_resize_short: int | None = 256
    val_crop_size: int = 224
    flip_label_map: tuple[tuple[int, int], ...] = ()


_COS = LrPolicy("cosine")  # CosineAnnealing, min_lr 0, per epoch
_COS_ITER = LrPolicy("cosine", by_epoch=False)
_COS_W10 = LrPolicy("cosine", warmup="linear", warmup_epochs=10.0)
_COS_W34 = LrPolicy("cosine", warmup="linear", warmup_epochs=34.0)
# hmdb51/ucf101 ImageNet configs: policy CosineAnnealing per iteration over sgd_150e_warmup.py, whose warmup
# (linear, 10 epochs) the merge keeps (and whose `step`, which the cosine hook does not take)
_COS_ITER_W10 = LrPolicy("cosine", by_epoch=False, warmup="linear", warmup_epochs=10.0)
_STEP_90_130_W10 = LrPolicy("step", steps=(90, 130), warmup="linear", warmup_epochs=10.0)
_STEP_90_110 = LrPolicy("step", steps=(90, 110))
_STEP_15_30 = LrPolicy("step", steps=(15, 30))
_K400_8X8 = "slowonly_r50_8x8x1_k400"  # load_from ..._20200703-a79c555a.pth
_K400_FLOW_4X16 = "slowonly_r50_4x16x1_k400_flow"  # load_from ..._20200704-decb8568.pth
_JESTER_FLIPS = ((0, 1), (1, 0), (6, 7), (7, 6))  # swiping left/right, pushing/pulling two fingers

_IN1K, _NONE = INIT_IMAGENET, INIT_SCRATCH
DATA_BENCHMARK = "data_benchmark/"

# fmt: off
RECIPE_FACTS: dict[str, RecipeFacts] = {
    # fields: videos_per_gpu, lr, clip_max_norm, schedule, epochs, init, val_interval, save_interval, then the
    #         pipeline sizes where they differ from the defaults
    "slowonly_r50_4x16x1_256e_kinetics400_rgb": RecipeFacts(8, 0.1, 40, _COS, 256, _NONE, 5, 4),
    DATA_BENCHMARK + "slowonly_r50_randomresizedcrop_256p_4x16x1_256e_kinetics400_rgb":
        RecipeFacts(16, 0.6, 40, _COS, 256, _NONE, 5, 4),
    DATA_BENCHMARK + "slowonly_r50_randomresizedcrop_340x256_4x16x1_256e_kinetics400_rgb":
        RecipeFacts(16, 0.6, 40, _COS, 256, _NONE, 5, 4),
    "slowonly_r50_8x8x1_256e_kinetics400_rgb": RecipeFacts(8, 0.1, 40, _COS, 256, _NONE, 5, 4),
    "slowonly_r50_video_4x16x1_256e_kinetics400_rgb": RecipeFacts(24, 0.3, 40, _COS, 256, _NONE, 5, 4),
    "slowonly_imagenet_pretrained_r50_4x16x1_150e_kinetics400_rgb":
        RecipeFacts(8, 0.01, 40, _STEP_90_130_W10, 150, _IN1K, 5, 4),
    "slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb":
        RecipeFacts(8, 0.01, 40, _STEP_90_130_W10, 150, _IN1K, 5, 4),
    "slowonly_nl_embedded_gaussian_r50_4x16x1_150e_kinetics400_rgb":
        RecipeFacts(8, 0.01, 40, _STEP_90_130_W10, 150, _IN1K, 5, 1),
    "slowonly_nl_embedded_gaussian_r50_8x8x1_150e_kinetics400_rgb":
        RecipeFacts(8, 0.01, 40, _STEP_90_130_W10, 150, _IN1K, 5, 1),
    # flow: the ImageNet conv1 (3 channels) cannot be inflated into the 2-channel stem, which stays random
    "slowonly_r50_4x16x1_256e_kinetics400_flow":
        RecipeFacts(24, 0.06, 40, _COS_W34, 256, _IN1K, 5, 4, val_crop_size=256),
    "slowonly_r50_8x8x1_256e_kinetics400_flow":
        RecipeFacts(12, 0.06, 40, _COS_W34, 196, _IN1K, 5, 4, val_crop_size=256),
    "slowonly_r101_8x8x1_196e_kinetics400_rgb": RecipeFacts(8, 0.1, 40, _COS_W34, 196, _NONE, 5, 4),
    # K600 / K700: videos stored at short side 256, no Resize in either pipeline
    "slowonly_r50_video_8x8x1_256e_kinetics600_rgb":
        RecipeFacts(12, 0.15, 40, _COS, 256, _NONE, 5, 4, resize_short=None, val_resize_short=None),
    "slowonly_r50_video_8x8x1_256e_kinetics700_rgb":
        RecipeFacts(12, 0.15, 40, _COS, 256, _NONE, 5, 4, resize_short=None, val_resize_short=None),
    "slowonly_imagenet_pretrained_r50_4x16x1_120e_gym99_rgb":
        RecipeFacts(24, 0.03, 40, _STEP_90_110, 120, _IN1K, 5, 1),
    "slowonly_k400_pretrained_r50_4x16x1_120e_gym99_flow":
        RecipeFacts(24, 0.03, 40, _STEP_90_110, 120, _K400_FLOW_4X16, 5, 1, val_crop_size=256),
    # Jester: no Resize before the crop, CenterCrop(256) at validation, mirrored gestures swap labels
    "slowonly_imagenet_pretrained_r50_8x8x1_64e_jester_rgb":
        RecipeFacts(8, 0.1, 40, _COS_ITER, 64, _IN1K, 5, 4, resize_short=None, val_crop_size=256,
                    flip_label_map=_JESTER_FLIPS),
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_hmdb51_rgb":
        RecipeFacts(8, 0.1, 40, _COS_ITER_W10, 64, _IN1K, 1, 1),
    "slowonly_k400_pretrained_r50_8x4x1_40e_hmdb51_rgb": RecipeFacts(8, 0.001, 20, _STEP_15_30, 40, _K400_8X8, 1, 1),
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_ucf101_rgb":
        RecipeFacts(8, 0.1, 40, _COS_ITER_W10, 64, _IN1K, 1, 1),
    "slowonly_k400_pretrained_r50_8x4x1_40e_ucf101_rgb": RecipeFacts(8, 0.001, 20, _STEP_15_30, 40, _K400_8X8, 1, 1),
    # Something-Something V1: short side 128, 112x112 crops
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb":
        RecipeFacts(8, 0.1, 40, _COS_W10, 64, _IN1K, 1, 1, resize_short=128, out_size=112, val_resize_short=128,
                    val_crop_size=112),
}
# fmt: on

# Entries trained with another config than the one their architecture and test protocol come from.
RECIPE_CONFIG: dict[str, str] = {
    # README rows name the plain 4x16x1 config and the data-benchmark one for this checkpoint (same log); the
    # data-benchmark config is the short-side-256 recipe (videos_per_gpu 16, lr 0.6)
    "slowonly_r50_4x16x1_k400_256p": DATA_BENCHMARK + "slowonly_r50_randomresizedcrop_256p_4x16x1_256e_kinetics400_rgb",
}
_OMNI_NOTE = (
    "trained with the OmniSource recipe (configs/recognition/omnisource/), which mixes web images and web videos "
    "into Kinetics-400; those data are not public in that form, so this recipe (the plain {config} config's) is "
    "recorded but cannot be rerun as is"
)
RECIPE_NOTES: dict[str, str] = {
    "slowonly_r50_4x16x1_k400_omni": _OMNI_NOTE.format(config="4x16x1 R50"),
    "slowonly_r101_8x8x1_k400_omni": _OMNI_NOTE.format(config="8x8x1 R101"),
    "slowonly_r50_8x8x1_k400_256p": "no 0.x config of its own: the 8x8x1 config run on frames stored at short side 256",
}
NOT_RUNNABLE = {"slowonly_r50_4x16x1_k400_omni", "slowonly_r101_8x8x1_k400_omni"}


def make_recipe(name: str, config_path: str, arch: Architecture, gpus: str | None) -> TrainRecipe:
    """``name``'s recipe; ``config_path`` is the entry's config ('configs/recognition/slowonly/[...].py')."""
    if not config_path.startswith(CONFIG_DIR) or not config_path.endswith(".py"):
        raise SystemExit(f"{name}: config {config_path} is not under {CONFIG_DIR}; add its recipe to RECIPE_CONFIG")
    stem = RECIPE_CONFIG.get(name, config_path[len(CONFIG_DIR) : -len(".py")])
    if stem not in RECIPE_FACTS:
        raise SystemExit(f"{name}: no train recipe for config {stem!r}; add it to RECIPE_FACTS in tools/build_index.py")
    facts = RECIPE_FACTS[stem]
    mean, std = (RGB_MEAN, RGB_STD) if arch.modality == "rgb" else (FLOW_MEAN, FLOW_STD)
    return TrainRecipe(
        config=f"{CONFIG_DIR}{stem}.py",
        gpus=gpus,
        videos_per_gpu=facts.videos_per_gpu,
        lr=facts.lr,
        schedule=facts.schedule,
        epochs=facts.epochs,
        init=facts.init,
        sampling=TrainSampling(clip_len=arch.clip_len, frame_interval=arch.frame_interval, num_clips=1),
        resize_short=facts.resize_short,
        out_size=facts.out_size,
        mean=mean,
        std=std,
        val=ValPipeline(resize_short=facts.val_resize_short, crop_size=facts.val_crop_size, num_clips=1),
        clip_max_norm=float(facts.clip_max_norm),
        flip_label_map=facts.flip_label_map,
        val_interval=facts.val_interval,
        save_interval=facts.save_interval,
        runnable=name not in NOT_RUNNABLE,
        note=RECIPE_NOTES.get(name),
    )


# --------------------------------------------------------------------------------------------------
# FAIR's Slow R50 checkpoints (PySlowFast / pytorchvideo, host dl.fbaipublicfiles.com)
# --------------------------------------------------------------------------------------------------
# Facts from ../shared/reference/fair_slow_checkpoints.md (sections 1-4): facebookresearch/SlowFast MODEL_ZOO.md
# and configs, facebookresearch/pytorchvideo docs/source/model_zoo.md and hub/resnet.py. Their file names carry
# no hash, so these entries hold no SHA256 Prefix.

FAIR_HOST = "https://dl.fbaipublicfiles.com/"
PYSLOWFAST_ZOO = "https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md"
PYTORCHVIDEO_ZOO = "https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md"
# RGB / 255, then mean 0.45 and std 0.225 on every channel (SlowFast slowfast/config/defaults.py, DATA.MEAN and
# DATA.STD; datasets/utils.py tensor_normalize), written on the 0-255 scale of every index entry.
FAIR_MEAN: tuple[float, ...] = (0.45 * 255,) * 3
FAIR_STD: tuple[float, ...] = (0.225 * 255,) * 3
FAIR_TARGET_FPS = 30.0  # DATA.TARGET_FPS


class FairFacts(NamedTuple):
    name: str
    aliases: tuple[str, ...]
    provenance: str  # 'pytorchvideo' | 'pyslowfast'
    path: str  # below FAIR_HOST
    format: str  # 'pytorchvideo-pyth' | 'caffe2-pkl'
    dataset: str  # key of FAIR_DATASETS
    clip_len: int
    frame_interval: int
    config: str  # the PySlowFast config the numbers were produced with
    results: tuple[float | None, float | None, float | None]  # top-1, top-5, mAP (percent)
    section: str  # where the numbers are written
    row: int  # line of that file


class FairDataset(NamedTuple):
    name: str
    num_classes: int
    label_file: str | None
    sampling: str  # PROTOCOL_SAMPLINGS
    num_clips: int
    view_ensemble: str  # TEST.ENSEMBLE_METHOD (PySlowFast sums by default)
    score_activation: str  # MODEL.HEAD_ACT
    metric: str


FAIR_DATASETS: dict[str, FairDataset] = {
    # 10 clips x 3 crops, short side = crop = 256, frames spread over a 30-fps window (SlowFast datasets/decoder.py
    # and kinetics.py); PySlowFast's Kinetics class ids are the alphabetical order of labels/kinetics400.txt
    "k400": FairDataset(
        "Kinetics-400", 400, "labels/kinetics400.txt", "pyslowfast-decoder", 10, "sum", "softmax", "accuracy"
    ),
    # 8 frames, one from the middle of each of 8 segments of the whole video, 1 clip x 3 crops (pytorchvideo
    # data/ssv2.py; SlowFast configs/SSv2/pytorchvideo/SLOW_8x8_R50.yaml). No SSv2 label file ships yet.
    "ssv2": FairDataset("Something-Something V2", 174, None, "segment-middle", 1, "sum", "softmax", "accuracy"),
    # 10 clips x 3 crops, max over views, sigmoid scores, mAP (SlowFast configs/Charades/pytorchvideo/SLOW_8x8_R50.yaml)
    "charades": FairDataset("Charades", 157, None, "pyslowfast-decoder", 10, "max", "sigmoid", "mAP"),
}

_PTV, _PYSF = "pytorchvideo", "pyslowfast"
_PTV_ZOO_FILE = "pytorchvideo docs/source/model_zoo.md"
_PYSF_ZOO_FILE = "SlowFast MODEL_ZOO.md"

# fmt: off
FAIR: tuple[FairFacts, ...] = (
    FairFacts("slow_r50_4x16_k400_pytorchvideo", (), _PTV, "pytorchvideo/model_zoo/kinetics/SLOW_4x16_R50.pyth",
              "pytorchvideo-pyth", "k400", 4, 16, "configs/Kinetics/pytorchvideo/SLOW_4x16_R50.yaml",
              (72.40, 90.18, None), _PTV_ZOO_FILE, 14),
    # pytorchvideo's torch.hub `slow_r50` loads this file (pytorchvideo hub/resnet.py)
    FairFacts("slow_r50_8x8_k400_pytorchvideo", ("slow_r50",), _PTV,
              "pytorchvideo/model_zoo/kinetics/SLOW_8x8_R50.pyth", "pytorchvideo-pyth", "k400", 8, 8,
              "configs/Kinetics/pytorchvideo/SLOW_8x8_R50.yaml",
              (74.58, 91.63, None), _PTV_ZOO_FILE, 15),
    FairFacts("slow_r50_4x16_k400_pyslowfast", ("SLOWONLY_4x16_R50",), _PYSF,
              "pyslowfast/model_zoo/kinetics400/SLOWONLY_4x16_R50.pkl", "caffe2-pkl", "k400", 4, 16,
              "configs/Kinetics/c2/SLOW_4x16_R50.yaml", (72.7, 90.3, None), _PYSF_ZOO_FILE, 10),
    FairFacts("slow_r50_8x8_k400_pyslowfast", ("SLOWONLY_8x8_R50",), _PYSF,
              "pyslowfast/model_zoo/kinetics400/SLOWONLY_8x8_R50.pkl", "caffe2-pkl", "k400", 8, 8,
              "configs/Kinetics/c2/SLOW_8x8_R50.yaml", (74.8, 91.6, None), _PYSF_ZOO_FILE, 11),
    FairFacts("slow_r50_8x8_ssv2_pytorchvideo", (), _PTV, "pytorchvideo/model_zoo/ssv2/SLOW_8x8_R50.pyth",
              "pytorchvideo-pyth", "ssv2", 8, 8, "configs/SSv2/pytorchvideo/SLOW_8x8_R50.yaml",
              (60.04, 85.19, None), _PTV_ZOO_FILE, 33),
    FairFacts("slow_r50_8x8_charades_pytorchvideo", (), _PTV, "pytorchvideo/model_zoo/charades/SLOW_8x8_R50.pyth",
              "pytorchvideo-pyth", "charades", 8, 8, "configs/Charades/pytorchvideo/SLOW_8x8_R50.yaml",
              (None, None, 34.72), _PTV_ZOO_FILE, 41),
)
# fmt: on
# The head that reproduces each provenance's reported numbers (../shared/reference/fair_slow_checkpoints.md sections
# 1b, 3): the Caffe2 files ran in PySlowFast's ResNet (eval: mean of the per-position softmax/sigmoid); the
# pytorchvideo files' numbers come from PySlowFast's test workflow too (pytorchvideo docs/source/model_zoo.md:
# "conducted by PySlowFast workflow"), whose PTVResNet wrapper builds the net without global averaging and, in eval,
# applies the softmax/sigmoid per position before the mean (SlowFast slowfast/models/ptv_model_builder.py
# PTVResNet.forward). So both are 'pyslowfast'; the 'pytorchvideo' head mode (mean of per-position logits,
# pytorchvideo's hub slow_r50) stays available in slowonly_zoo/models/head.py for parity with pytorchvideo's modules.
FAIR_HEAD_MODE = {_PTV: "pyslowfast", _PYSF: "pyslowfast"}

# Recorded so that a look-up explains why it cannot be built. pytorchvideo hub `slow_r50_detection`.
FAIR_UNSUPPORTED_AVA = ModelEntry(
    name="slow_r50_4x16_ava_pytorchvideo",
    aliases=("slow_r50_detection",),
    config=None,
    collection=COLLECTION,
    dataset="AVA v2.2",
    num_classes=80,
    label_file=None,
    pretrain="Kinetics-400",
    train_resolution=None,
    architecture=None,
    protocol=None,
    results=(
        ReportedResult(
            dataset="AVA v2.2", task="Action Detection", mean_average_precision=19.5, section=_PTV_ZOO_FILE, row=49
        ),
    ),
    checkpoint=Checkpoint(
        url=FAIR_HOST + "pytorchvideo/model_zoo/ava/SLOW_4x16_R50_DETECTION.pyth",
        filename="SLOW_4x16_R50_DETECTION.pyth",
        sha256_prefix=None,
        format="pytorchvideo-pyth",
    ),
    params=31_798_416,
    provenance=_PTV,
    unsupported=(
        "an AVA action detector: it needs person boxes from a separate detector, RoIAlign and a sigmoid RoI head "
        "over a res5 with dilation 2, and this zoo builds clip classifiers only; use pytorchvideo's "
        "slow_r50_detection for it"
    ),
)


def fair_protocol(facts: FairFacts) -> TestProtocol:
    ds = FAIR_DATASETS[facts.dataset]
    return TestProtocol(
        num_clips=ds.num_clips,
        clip_len=facts.clip_len,
        frame_interval=facts.frame_interval,
        resize_short=256,
        crop="three",
        crop_size=256,
        mean=FAIR_MEAN,
        std=FAIR_STD,
        normalize="rgb",
        average_clips="prob",
        data_format="video",
        filename_tmpl=None,
        start_index=0,
        sampling=ds.sampling,
        target_fps=FAIR_TARGET_FPS if ds.sampling == "pyslowfast-decoder" else None,
        view_ensemble=ds.view_ensemble,
        score_activation=ds.score_activation,
        metric=ds.metric,
    )


def fair_entries() -> list[ModelEntry]:
    """The FAIR entries, in FAIR's order, then the recorded-but-unsupported AVA detector."""
    entries = []
    for facts in FAIR:
        ds = FAIR_DATASETS[facts.dataset]
        top1, top5, m_ap = facts.results
        entries.append(
            ModelEntry(
                name=facts.name,
                aliases=facts.aliases,
                config=facts.config,
                collection=COLLECTION,
                dataset=ds.name,
                num_classes=ds.num_classes,
                label_file=ds.label_file,
                pretrain=None if facts.dataset == "k400" else "Kinetics-400",
                train_resolution=None,
                architecture=Architecture(
                    depth=50,
                    non_local=False,
                    in_channels=3,
                    modality="rgb",
                    with_pool1=True,
                    clip_len=facts.clip_len,
                    frame_interval=facts.frame_interval,
                    head_mode=FAIR_HEAD_MODE[facts.provenance],
                ),
                protocol=fair_protocol(facts),
                results=(
                    ReportedResult(
                        dataset=ds.name,
                        top1=top1,
                        top5=top5,
                        mean_average_precision=m_ap,
                        section=facts.section,
                        row=facts.row,
                        source_config=facts.config,
                    ),
                ),
                checkpoint=Checkpoint(
                    url=FAIR_HOST + facts.path,
                    filename=facts.path.rsplit("/", 1)[-1],
                    sha256_prefix=None,
                    format=facts.format,
                ),
                params=param_count(50, False, "rgb", ds.num_classes),
                training_data=ds.name,
                provenance=facts.provenance,
            )
        )
    entries.append(FAIR_UNSUPPORTED_AVA)
    return entries


# --------------------------------------------------------------------------------------------------
# mmaction2 1.x's SlowOnly checkpoints (re-trained, host download.openmmlab.com/mmaction/v1.0/)
# --------------------------------------------------------------------------------------------------
# Hand-kept from ../shared/reference/mmaction2_1x/ (mmaction2 main @ 4d6c9347: configs/recognition/slowonly/
# README.md and metafile.yml; tests/test_index_mm1x.py checks every fact below against both files). Same
# architecture and key layout as 0.x; the 1.x test pipeline (the 1.2.0 wheel's mmaction/.mim/configs/recognition/
# slowonly/*.py test_pipeline and _base_/models/slowonly_r50.py data_preprocessor): DecordInit, SampleFrames(
# num_clips=10, test_mode=True) with 1.x's PySlowFast-style offsets, DecordDecode, Resize(-1, 256), ThreeCrop(256),
# mean/std as 0.x's img_norm_cfg, I3DHead average_clips='prob'.
# Slips of the two files, recorded rather than resolved silently:
# * top-1/top-5 differ between README and metafile for 9 of 10 models: both are kept, each with its source;
# * the metafile (and README) name the NL 8x8x1 file with the ImageNet 8x8x1 file's hash suffix df42dc84 (other
#   URL): the weights code then needs the full file name (slowonly_zoo/weights/transfer.py);
# * for K700 the metafile's Weights (20220901-f73b3e89 / -4098e1eb, in a folder named 8xb16 that does not match
#   its 16xb16 config) are not the README's (20221013-98b1b0a7 / -15b93b10, folder = config name). The README's
#   are the later publication and are the entries' files; the metafile's are kept as Previous Filenames;
# * the metafile says K700's Training Data is Kinetics-400 (its Results say Kinetics-700, as does the config).

MM1X_HOST = "https://download.openmmlab.com/mmaction/v1.0/recognition/slowonly/"
MM1X_README_FILE = "mmaction2 1.x configs/recognition/slowonly/README.md"
MM1X_METAFILE_FILE = "mmaction2 1.x configs/recognition/slowonly/metafile.yml"
MM1X_SAMPLING = "mmaction1x"


class Mm1xFacts(NamedTuple):
    name: str
    config: str  # 1.x config name (no .py)
    ckpt: str  # checkpoint file name (README's), below MM1X_HOST + config + '/'
    log: str  # training log file name, same folder
    depth: int
    non_local: bool
    clip_len: int
    frame_interval: int
    dataset: str  # key of MM1X_DATASETS
    pretrain: str | None
    epochs: int
    readme: tuple[str, int, float, float, str]  # (section, file line, top-1, top-5, gpus column)
    metafile: tuple[int, float, float, str]  # (file line of Top 1 Accuracy, top-1, top-5, Training Resources)
    metafile_ckpt_url: str | None = None  # the metafile's Weights where they are not the README's file


MM1X_DATASETS: dict[str, tuple[str, int, str]] = {
    "k400": ("Kinetics-400", 400, "labels/kinetics400.txt"),
    "k700": ("Kinetics-700", 700, "labels/kinetics700.txt"),
    # mmaction2 tools/data/kinetics710/label_map_k710.txt, in label order
    "k710": ("Kinetics-710", 710, "labels/kinetics710.txt"),
}

_IN1K_K400 = "slowonly_imagenet-pretrained-r50_8xb16-{}-steplr-150e_kinetics400-rgb"
_NL_K400 = "slowonly_r50-in1k-pre-nl-embedded-gaussian_8xb16-{}-steplr-150e_kinetics400-rgb"
_IN1K_K700 = "slowonly_imagenet-pretrained-r50_16xb16-{}-steplr-150e_kinetics700-rgb"
_IN1K_K710 = "slowonly_imagenet-pretrained-r50_32xb8-8x8x1-steplr-150e_kinetics710-rgb"

# fmt: off
MM1X: tuple[Mm1xFacts, ...] = (
    Mm1xFacts("slowonly_r50_4x16x1_k400_mm1x", "slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb",
              "slowonly_r50_4x16x1_256e_8xb16_kinetics400-rgb_20220901-f6a40d08.pth",
              "slowonly_r50_4x16x1_256e_8xb16_kinetics400-rgb.log", 50, False, 4, 16, "k400", None, 256,
              ("Kinetics-400", 25, 72.97, 90.88, "8"), (27, 72.68, 90.68, "8 GPUs")),
    Mm1xFacts("slowonly_r50_8x8x1_k400_mm1x", "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb",
              "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb_20220901-2132fc87.pth",
              "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.log", 50, False, 8, 8, "k400", None, 256,
              ("Kinetics-400", 26, 75.15, 92.11, "8"), (50, 74.82, 91.80, "8 GPUs")),
    Mm1xFacts("slowonly_r101_8x8x1_k400_mm1x", "slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb",
              "slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb_20220901-e6281431.pth",
              "slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb.log", 101, False, 8, 8, "k400", None, 196,
              ("Kinetics-400", 27, 76.59, 92.80, "8"), (74, 76.28, 92.70, "8 GPUs")),
    Mm1xFacts("slowonly_r50_4x16x1_k400_in1k_mm1x", _IN1K_K400.format("4x16x1"),
              _IN1K_K400.format("4x16x1") + "_20220901-e7b65fad.pth", _IN1K_K400.format("4x16x1") + ".log",
              50, False, 4, 16, "k400", "ImageNet", 150,
              ("Kinetics-400", 28, 75.12, 91.72, "8"), (97, 74.83, 91.60, "8 GPUs")),
    Mm1xFacts("slowonly_r50_8x8x1_k400_in1k_mm1x", _IN1K_K400.format("8x8x1"),
              _IN1K_K400.format("8x8x1") + "_20220901-df42dc84.pth", _IN1K_K400.format("8x8x1") + ".log",
              50, False, 8, 8, "k400", "ImageNet", 150,
              ("Kinetics-400", 29, 76.45, 92.55, "8"), (120, 75.96, 92.40, "8 GPUs")),
    Mm1xFacts("slowonly_r50_nl_4x16x1_k400_mm1x", _NL_K400.format("4x16x1"),
              _NL_K400.format("4x16x1") + "_20220901-cf739c75.pth", _NL_K400.format("4x16x1") + ".log",
              50, True, 4, 16, "k400", "ImageNet", 150,
              ("Kinetics-400", 30, 75.07, 91.69, "8"), (144, 74.84, 91.41, "8 GPUs")),
    # the file name repeats the ImageNet 8x8x1 file's hash suffix df42dc84 (see the slips above)
    Mm1xFacts("slowonly_r50_nl_8x8x1_k400_mm1x", _NL_K400.format("8x8x1"),
              _NL_K400.format("8x8x1") + "_20220901-df42dc84.pth", _NL_K400.format("8x8x1") + ".log",
              50, True, 8, 8, "k400", "ImageNet", 150,
              ("Kinetics-400", 31, 76.65, 92.47, "8"), (167, 76.35, 92.18, "8 GPUs")),
    Mm1xFacts("slowonly_r50_4x16x1_k700_mm1x", _IN1K_K700.format("4x16x1"),
              _IN1K_K700.format("4x16x1") + "_20221013-98b1b0a7.pth", _IN1K_K700.format("4x16x1") + ".log",
              50, False, 4, 16, "k700", "ImageNet", 150,
              ("Kinetics-700", 37, 65.52, 86.39, "8x2"), (190, 65.18, 86.05, "16 GPUs"),
              MM1X_HOST + "slowonly_imagenet-pretrained-r50_8xb16-4x16x1-steplr-150e_kinetics700-rgb/"
              + _IN1K_K700.format("4x16x1") + "_20220901-f73b3e89.pth"),
    Mm1xFacts("slowonly_r50_8x8x1_k700_mm1x", _IN1K_K700.format("8x8x1"),
              _IN1K_K700.format("8x8x1") + "_20221013-15b93b10.pth", _IN1K_K700.format("8x8x1") + ".log",
              50, False, 8, 8, "k700", "ImageNet", 150,
              ("Kinetics-700", 38, 67.67, 87.80, "8x2"), (213, 66.93, 87.47, "16 GPUs"),
              MM1X_HOST + "slowonly_imagenet-pretrained-r50_8xb16-8x8x1-steplr-150e_kinetics700-rgb/"
              + _IN1K_K700.format("8x8x1") + "_20220901-4098e1eb.pth"),
    Mm1xFacts("slowonly_r50_8x8x1_k710_mm1x", _IN1K_K710, _IN1K_K710 + "_20230612-12ce977c.pth", _IN1K_K710 + ".log",
              50, False, 8, 8, "k710", "ImageNet", 150,
              ("Kinetics-710", 44, 72.39, 90.60, "8x4"), (236, 72.39, 90.60, "32 GPUs")),
)
# fmt: on


def mm1x_protocol(facts: Mm1xFacts) -> TestProtocol:
    """mmaction2 1.x's test_pipeline for these configs (identical for all ten)."""
    return TestProtocol(
        num_clips=NUM_CLIPS,
        clip_len=facts.clip_len,
        frame_interval=facts.frame_interval,
        resize_short=256,
        crop="three",
        crop_size=256,
        mean=RGB_MEAN,
        std=RGB_STD,
        normalize="rgb",
        average_clips=AVERAGE_CLIPS,
        data_format="video",
        filename_tmpl=None,
        start_index=0,
        sampling=MM1X_SAMPLING,
    )


def mm1x_results(facts: Mm1xFacts, dataset: str) -> tuple[ReportedResult, ...]:
    """The README row, then the metafile's numbers where they differ from it."""
    section, line, top1, top5, gpus = facts.readme
    readme = ReportedResult(
        dataset=dataset,
        top1=top1,
        top5=top5,
        resolution="224x224",
        training_resources=gpus,
        section=f"{MM1X_README_FILE} § {section}",
        row=line,
        source_config=facts.config,
    )
    m_line, m_top1, m_top5, m_gpus = facts.metafile
    if (m_top1, m_top5) == (top1, top5):
        return (readme,)
    metafile = ReportedResult(
        dataset=dataset,
        top1=m_top1,
        top5=m_top5,
        resolution="short-side 320",
        training_resources=m_gpus,
        section=MM1X_METAFILE_FILE,
        row=m_line,
        source_config=facts.config,
    )
    return readme, metafile


def mm1x_entries() -> list[ModelEntry]:
    """The ten mmaction2 1.x classifiers, in the 1.x README's order."""
    entries = []
    for facts in MM1X:
        dataset, num_classes, label_file = MM1X_DATASETS[facts.dataset]
        folder = MM1X_HOST + facts.config + "/"
        stem = facts.ckpt.removesuffix(".pth")
        suffix = _SUFFIX_RE.search(facts.ckpt)
        assert suffix is not None, facts.ckpt
        previous = (facts.metafile_ckpt_url.rsplit("/", 1)[-1],) if facts.metafile_ckpt_url else ()
        entries.append(
            ModelEntry(
                name=facts.name,
                aliases=tuple(dict.fromkeys((facts.config, stem))),
                config=f"{CONFIG_DIR}{facts.config}.py",
                collection=COLLECTION,
                dataset=dataset,
                num_classes=num_classes,
                label_file=label_file,
                pretrain=facts.pretrain,
                train_resolution="short-side 320",
                architecture=Architecture(
                    depth=facts.depth,
                    non_local=facts.non_local,
                    in_channels=3,
                    modality="rgb",
                    with_pool1=True,
                    clip_len=facts.clip_len,
                    frame_interval=facts.frame_interval,
                ),
                protocol=mm1x_protocol(facts),
                results=mm1x_results(facts, dataset),
                checkpoint=Checkpoint(
                    url=folder + facts.ckpt,
                    filename=facts.ckpt,
                    sha256_prefix=suffix.group(1),
                    log_url=folder + facts.log,
                    previous_filenames=previous,
                ),
                params=param_count(facts.depth, facts.non_local, "rgb", num_classes),
                training_data=dataset,
                epochs=facts.epochs,
                provenance="mmaction2-1.x",
            )
        )
    return entries


# --------------------------------------------------------------------------------------------------
# README parsing
# --------------------------------------------------------------------------------------------------

_LINK_RE = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_SUFFIX_RE = re.compile(r"-([0-9a-f]{8})\.pth$")


@dataclass
class Row:
    section: str
    number: int  # 1-based inside the section's table
    cells: dict[str, str]

    def where(self) -> str:
        return f"README § {self.section}, row {self.number}"

    def link(self, column: str) -> tuple[str, str] | None:
        m = _LINK_RE.search(self.cells.get(column, ""))
        return (m.group(1).strip(), m.group(2).strip()) if m else None

    def url(self, column: str) -> str | None:
        link = self.link(column)
        return link[1] if link else None

    def value(self, *columns: str) -> str | None:
        """The first present column's text, None for a missing column, an empty cell or 'x'."""
        for c in columns:
            if c in self.cells:
                v = self.cells[c].strip()
                return None if v in ("", "x") else v
        return None

    def number_value(self, *columns: str) -> float | None:
        v = self.value(*columns)
        if v is None:
            return None
        try:
            return float(v)
        except ValueError:
            raise SystemExit(f"{self.where()}: column {columns[0]!r} is not a number: {v!r}") from None

    @property
    def config_name(self) -> str | None:
        link = self.link("config")
        return link[0] if link else None

    @property
    def config_path(self) -> str | None:
        link = self.link("config")
        return link[1].lstrip("/") if link else None


def parse_tables(text: str) -> list[Row]:
    """Every row of every table under a '### ' heading, in README order."""
    rows: list[Row] = []
    section: str | None = None
    header: list[str] | None = None
    count = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("### "):
            section, header, count = s[4:].strip(), None, 0
            continue
        if not s.startswith("|"):
            header = None if not s else header
            continue
        cells = [c.strip() for c in s.strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set(":- ") for c in cells):  # alignment row
            continue
        if section is None:
            raise SystemExit(f"a table row before any '### ' section: {s[:80]}")
        if len(cells) != len(header):
            raise SystemExit(f"README § {section}: a row has {len(cells)} cells, the header {len(header)}")
        count += 1
        rows.append(Row(section, count, dict(zip(header, cells))))
    return rows


def parse_paper(text: str) -> tuple[str, str]:
    for line in text.splitlines():
        m = _LINK_RE.fullmatch(line.strip())
        if m:
            return m.group(1), m.group(2)
    raise SystemExit("README: no paper link line found")


# --------------------------------------------------------------------------------------------------
# building entries
# --------------------------------------------------------------------------------------------------


def row_canonical(row: Row, by_suffix: dict[str, str]) -> str:
    ckpt = row.url("ckpt")
    if ckpt is None:
        if row.section == FUSION[1] and (row.cells.get("config") or "").strip() == FUSION[2]:
            return FUSION[0]
        raise SystemExit(f"{row.where()}: no checkpoint and not the known fusion row; update tools/build_index.py")
    m = _SUFFIX_RE.search(ckpt)
    if not m:
        raise SystemExit(f"{row.where()}: checkpoint file name has no -<8 hex>.pth suffix: {ckpt}")
    if m.group(1) not in by_suffix:
        raise SystemExit(f"{row.where()}: unknown checkpoint {ckpt}; add it to CANONICAL in tools/build_index.py")
    return by_suffix[m.group(1)]


def row_result(row: Row, dataset: str) -> ReportedResult:
    inference_time, inference_frames = None, None
    raw = row.value("inference_time(video/s)")
    if raw is not None:
        m = re.fullmatch(r"([0-9.]+)\s*(?:\((.*)\))?", raw)
        if not m:
            raise SystemExit(f"{row.where()}: cannot read inference time {raw!r}")
        inference_time, inference_frames = float(m.group(1)), m.group(2)
    gpu_mem = row.number_value("gpu_mem(m)")
    return ReportedResult(
        dataset=dataset,
        top1=row.number_value("top1 acc"),
        top5=row.number_value("top5 acc"),
        mean_class_accuracy=row.number_value("mean class acc"),
        inference_time=inference_time,
        inference_frames=inference_frames,
        gpu_mem=None if gpu_mem is None else int(gpu_mem),
        resolution=row.value("resolution"),
        training_resources=row.value("gpus"),
        section=row.section,
        row=row.number,
        source_config=row.config_name or (None if row.value("config") is None else row.cells["config"].strip()),
    )


def alias_candidates(row: Row) -> list[str]:
    """Names a README row gives its checkpoint: displayed config, config file, checkpoint stem and folder."""
    names = []
    if row.config_name:
        names.append(row.config_name)
    if row.config_path:
        names.append(Path(row.config_path).stem)
    ckpt = row.url("ckpt")
    if ckpt:
        parts = ckpt.rstrip("/").split("/")
        names.append(Path(parts[-1]).stem)
        if parts[-2].startswith("slowonly"):
            names.append(parts[-2])
    return names


def check_row_against_facts(row: Row, facts: ConfigFacts, protocol: TestProtocol) -> None:
    backbone = row.value("backbone")
    if backbone is not None and backbone != f"ResNet{facts.depth}":
        raise SystemExit(f"{row.where()}: backbone {backbone!r} but the config facts say depth {facts.depth}")
    given = row.value("input")
    if given is not None and given != f"{facts.clip_len}x{facts.frame_interval}":
        raise SystemExit(f"{row.where()}: input {given!r} disagrees with the config facts")
    testing = row.value("testing protocol")
    if testing is not None and testing != f"{protocol.num_clips} clips x {protocol.num_crops} crops":
        raise SystemExit(f"{row.where()}: testing protocol {testing!r} disagrees with the config facts")


def make_protocol(facts: ConfigFacts) -> TestProtocol:
    mean, std = (RGB_MEAN, RGB_STD) if facts.modality == "rgb" else (FLOW_MEAN, FLOW_STD)
    return TestProtocol(
        num_clips=NUM_CLIPS,
        clip_len=facts.clip_len,
        frame_interval=facts.frame_interval,
        resize_short=facts.resize_short,
        crop=facts.crop,
        crop_size=facts.crop_size,
        mean=mean,
        std=std,
        normalize=facts.modality,
        average_clips=AVERAGE_CLIPS,
        data_format=facts.data_format,
        filename_tmpl=facts.filename_tmpl,
        start_index=1 if facts.data_format == "rawframes" else 0,
    )


def build_entries(text: str) -> list[ModelEntry]:
    rows = parse_tables(text)
    by_suffix = {c.suffix: c.name for c in CANONICAL if c.suffix}
    rows_of: dict[str, list[Row]] = {c.name: [] for c in CANONICAL}
    for row in rows:
        if row.section not in SECTIONS:
            raise SystemExit(f"README § {row.section}: unknown section; add it to SECTIONS in tools/build_index.py")
        rows_of[row_canonical(row, by_suffix)].append(row)
    missing = [n for n, rs in rows_of.items() if not rs]
    if missing:
        raise SystemExit(f"no README row for {missing}")

    # aliases: every name a row gives, ambiguous ones to their owner
    claims: dict[str, set[str]] = {}
    for canon, rs in rows_of.items():
        for row in rs:
            for a in alias_candidates(row):
                claims.setdefault(a, set()).add(canon)
    aliases: dict[str, set[str]] = {c.name: set(EXTRA_ALIASES.get(c.name, ())) for c in CANONICAL}
    for a, owners in claims.items():
        if len(owners) > 1:
            if a not in AMBIGUOUS_OWNER:
                raise SystemExit(f"name {a!r} is used for {sorted(owners)}; add it to AMBIGUOUS_OWNER")
            owners = {AMBIGUOUS_OWNER[a]}
        aliases[owners.pop()].add(a)

    entries = []
    for c in CANONICAL:
        rs = rows_of[c.name]
        primary = rs[0]
        ds = DATASETS[SECTIONS[primary.section]]
        results = tuple(row_result(r, ds.name) for r in rs)
        names = tuple(sorted(a for a in aliases[c.name] if a != c.name))
        pretrain_raw = primary.value("pretrain") or "None"
        if pretrain_raw not in PRETRAIN:
            raise SystemExit(f"{primary.where()}: unknown pretrain {pretrain_raw!r}; add it to PRETRAIN")
        omni = primary.value("w. omnisource") == ":heavy_check_mark:"
        training_data = ds.name + (" + OmniSource" if omni else "")
        epochs_m = re.search(r"_(\d+)e_", primary.config_name or "")
        epochs = int(epochs_m.group(1)) if epochs_m else None

        if c.config is None:  # the ensemble
            entries.append(
                ModelEntry(
                    name=c.name,
                    aliases=names,
                    config=None,
                    collection=COLLECTION,
                    dataset=ds.name,
                    num_classes=ds.num_classes,
                    label_file=ds.label_file,
                    pretrain=None,
                    train_resolution=None,
                    architecture=None,
                    protocol=None,
                    results=results,
                    checkpoint=None,
                    params=None,
                    members=FUSION_MEMBERS,
                    member_weights=FUSION_WEIGHTS,
                    training_data=training_data,
                    epochs=None,
                )
            )
            continue

        facts = CONFIG_FACTS[c.config]
        protocol = make_protocol(facts)
        for r in rs:
            check_row_against_facts(r, facts, protocol)
        if primary.config_path and Path(primary.config_path).stem != c.config:
            raise SystemExit(f"{primary.where()}: config {primary.config_path} but CANONICAL says {c.config}")
        ckpt_url = primary.url("ckpt")
        assert ckpt_url is not None and c.suffix is not None
        filename = ckpt_url.rsplit("/", 1)[-1]
        arch = Architecture(
            depth=facts.depth,
            non_local=facts.non_local,
            in_channels=3 if facts.modality == "rgb" else 2,
            modality=facts.modality,
            with_pool1=facts.with_pool1,
            clip_len=facts.clip_len,
            frame_interval=facts.frame_interval,
        )
        entries.append(
            ModelEntry(
                name=c.name,
                aliases=names,
                config=primary.config_path or f"{CONFIG_DIR}{c.config}.py",
                collection=COLLECTION,
                dataset=ds.name,
                num_classes=ds.num_classes,
                label_file=ds.label_file,
                pretrain=PRETRAIN[pretrain_raw],
                train_resolution=primary.value("resolution"),
                architecture=arch,
                protocol=protocol,
                results=results,
                checkpoint=Checkpoint(
                    url=ckpt_url,
                    filename=filename,
                    sha256_prefix=c.suffix,
                    log_url=primary.url("log"),
                    json_url=primary.url("json"),
                    hf_hub_id=None,
                    previous_filenames=PREVIOUS_FILENAMES.get(c.name, ()),
                ),
                params=param_count(facts.depth, facts.non_local, facts.modality, ds.num_classes),
                training_data=training_data,
                epochs=epochs,
                train_recipe=make_recipe(
                    c.name, primary.config_path or f"{CONFIG_DIR}{c.config}.py", arch, primary.value("gpus")
                ),
            )
        )
    return entries + mm1x_entries() + fair_entries()


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------

HEADER = """\
# slowonly-zoo model index. GENERATED by tools/build_index.py from mmaction2's SlowOnly README
# (0.x branch, configs/recognition/slowonly/README.md). Do not edit by hand: change the script's hand-kept
# tables and regenerate (tests/test_index.py checks that they agree).
# README sha256: {sha}
#
# Layout: OpenMMLab / Papers-with-Code model index ("Collections", "Models"), extended for a video zoo.
# Per model (slowonly_zoo.index.ModelEntry field in brackets):
#   Name [name]               canonical name; Alias [aliases]: other names that resolve to it (upstream config
#                             names, the README's displayed config names, checkpoint file stems and folders).
#                             Look-ups ignore case, a directory/URL prefix and a trailing .py/.pth. A config
#                             with two checkpoints resolves to its short-side-320 one.
#   In Collection [collection]; Provenance [provenance]: who published the checkpoint (mmaction2-0.x,
#             mmaction2-1.x, pytorchvideo, pyslowfast); Config [config]: upstream config path (the metafile's for
#             OmniSource, PySlowFast's for FAIR entries)
#   Not Supported [unsupported]: why the zoo cannot build this model (recorded so a look-up says why)
#   Metadata: Architecture (informational), Training Data [training_data], Pretrained [pretrain],
#             Resolution [train_resolution], Epochs [epochs], Parameters [params] (full recognizer)
#   Results [results]: one item per README row naming this checkpoint, the entry's own row first.
#             Task, Dataset, Metrics (Top 1 Accuracy, Top 5 Accuracy, Mean Class Accuracy; percent),
#             Inference Time (video/s) [inference_time], Inference Frames, GPU Memory (MB) [gpu_mem],
#             Resolution, Training Resources (the README's gpus column), Source (Section, Row, Config).
#   Weights: checkpoint URL (PwC key; same as Checkpoint.URL)
#   Dataset [dataset], Num Classes [num_classes] (head size; GYM99 heads are 400-way), Label File [label_file]
#             (relative to the package, one class per line, label order; may list fewer names than classes)
#   Architecture [architecture]: Depth, Non Local, In Channels, Modality (rgb|flow), With Pool1, Clip Len,
#             Frame Interval, Head Mode (only when not 'global': pytorchvideo|pyslowfast, FAIR's window pooling)
#   Test Protocol [protocol]: Data Format (rawframes|video), Filename Template, Start Index, Num Clips, Clip Len,
#             Frame Interval, Resize Short (null: no resize), Crop (three|center), Crop Size, Normalize
#             (rgb|flow), Mean, Std, Average Clips (prob); mmaction2 1.x entries add Sampling (mmaction1x:
#             1.x's PySlowFast-style test offsets); FAIR entries add Sampling (pyslowfast-decoder|
#             segment-middle), Target FPS, View Ensemble (sum|max), Score Activation (sigmoid), Metric (mAP)
#   Checkpoint [checkpoint]: URL, Filename, SHA256 Prefix (first 8 hex digits of the file's SHA-256, from its
#             name; null for FAIR files, whose names carry none), Log, JSON, HF Hub ID, Previous Filenames
#             (earlier publications, other bytes), Format (mmaction2-pth|pytorchvideo-pyth|pyslowfast-pyth|caffe2-pkl)
#   Members, Member Weights [members, member_weights]: ensembles only (no Architecture/Test Protocol/Checkpoint)
#   Train Recipe [train_recipe]: how upstream trained the checkpoint (mmaction2 0.x config, checked against
#             mmcv's Config.fromfile): Config, Runnable + Note (OmniSource: web data, not rerunnable), GPUs (the
#             README's), LR GPUs and Videos Per GPU (the batch LR was set for; scale it linearly to yours), LR,
#             Momentum, Weight Decay (every parameter), Clip Max Norm (global L2), LR Schedule (Policy
#             cosine|step, By Epoch, Steps in epochs, Gamma, Min LR, Warmup linear|null, Warmup Epochs, Warmup
#             Ratio), Epochs, Init (scratch | imagenet: torchvision ResNet-50 inflated | a model name: its
#             checkpoint), Dropout (before the fc), Sampling (train mode), Resize Short (null: none), Crop
#             (RandomResizedCrop Area and Aspect ranges), Out Size, Flip Ratio, Flip Label Map, Mean, Std, Val
#             (1 clip, Resize Short, CenterCrop Crop Size), Val Interval, Save Interval (epochs), Log Interval
#             (iterations)
"""


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of numbers (Mean, Std, Member Weights), which read better on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    numeric = bool(data) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=numeric)


_Dumper.add_representer(list, _represent_list)


def render(readme_text: str) -> str:
    """The complete model_index.yml text for a README text."""
    entries = build_entries(readme_text)
    title, url = parse_paper(readme_text)
    doc = {
        "Collections": [
            {
                "Name": COLLECTION,
                "README": README_URL,
                "Code": CODE_URL,
                "Paper": {"Title": title, "URL": url},
                "Metadata": {"Architecture": ["ResNet3dSlowOnly", "I3DHead"]},
            }
        ],
        "Models": [entry_to_index(e) for e in entries],
    }
    body = yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000, default_flow_style=False
    )
    sha = hashlib.sha256(readme_text.encode("utf-8")).hexdigest()
    return HEADER.format(sha=sha) + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("readme", type=Path, help="mmaction2's configs/recognition/slowonly/README.md (0.x)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render(args.readme.read_text(encoding="utf-8"))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
