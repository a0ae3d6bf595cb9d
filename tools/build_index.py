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
  per upstream config (spec §1, §3.3), dataset / head size / label file (spec §2, §7), parameter counts
  (spec §5) and the few aliases that are not in the README (OmniSource's first file names, spec §0.13).

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

# The records only (standard library + PyYAML): the package's index would load the very file this script writes.
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


# The canonical names (issue 2). The OmniSource checkpoints have no config of their own; the metafile maps
# them to the 4x16x1 R50 and the R101 config (spec §0.13), whose architecture and protocol they share.
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
# (spec §0.13, other bytes, hence other hash prefixes) and have no config: their current file name without
# the date and hash serves as a config-like name. Note spec §0.12: upstream's metafile names the k400-pretrained
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
    """Architecture (spec §1.4) and test pipeline (spec §3.3) of one upstream config."""

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
    # K600 / K700: videos pre-resized to short side 256, no Resize at test time (spec §0.4)
    "slowonly_r50_video_8x8x1_256e_kinetics600_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "video", None, None, "three", 256),
    "slowonly_r50_video_8x8x1_256e_kinetics700_rgb":
        ConfigFacts(50, False, "rgb", True, 8, 8, "video", None, None, "three", 256),
    # GYM99: the flow model tests with CenterCrop (10 views, spec §0.3)
    "slowonly_imagenet_pretrained_r50_4x16x1_120e_gym99_rgb":
        ConfigFacts(50, False, "rgb", True, 4, 16, "rawframes", _RGB_RF, 256, "three", 256),
    "slowonly_k400_pretrained_r50_4x16x1_120e_gym99_flow":
        ConfigFacts(50, False, "flow", True, 4, 16, "rawframes", _FLOW_RF, 256, "center", 256),
    # Jester: named 8x8x1 but samples 8 frames at interval 4 (spec §0.5)
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
    # Something-Something V1: no stem max-pool, short side 128, ThreeCrop(128) (spec §0.2)
    "slowonly_imagenet_pretrained_r50_8x4x1_64e_sthv1_rgb":
        ConfigFacts(50, False, "rgb", False, 8, 4, "rawframes", _PLAIN_RF, 128, "three", 128),
}
# fmt: on

NUM_CLIPS = 10  # every SlowOnly test pipeline (spec §3.3)
AVERAGE_CLIPS = "prob"  # every SlowOnly test_cfg (spec §3.1)


class DatasetFacts(NamedTuple):
    name: str
    num_classes: int  # head size of the released models (spec §2)
    label_file: str  # inside the package (spec §7)


DATASETS: dict[str, DatasetFacts] = {
    "k400": DatasetFacts("Kinetics-400", 400, "labels/kinetics400.txt"),
    "k600": DatasetFacts("Kinetics-600", 600, "labels/kinetics600.txt"),
    "k700": DatasetFacts("Kinetics-700", 700, "labels/kinetics700.txt"),
    # GYM99 configs never override num_classes: 400-way heads, 99 labels (spec §0.1)
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

# Parameter counts of the 400-class recognizers, counted on the built 0.x models (spec §5). Other head sizes
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
            )
        )
    return entries


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
#   In Collection [collection]; Config [config]: upstream config path (the metafile's for OmniSource)
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
#             Frame Interval
#   Test Protocol [protocol]: Data Format (rawframes|video), Filename Template, Start Index, Num Clips, Clip Len,
#             Frame Interval, Resize Short (null: no resize), Crop (three|center), Crop Size, Normalize
#             (rgb|flow), Mean, Std, Average Clips (prob)
#   Checkpoint [checkpoint]: URL, Filename, SHA256 Prefix (first 8 hex digits of the file's SHA-256, from its
#             name), Log, JSON, HF Hub ID, Previous Filenames (earlier publications, other bytes)
#   Members, Member Weights [members, member_weights]: ensembles only (no Architecture/Test Protocol/Checkpoint)
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
        "Models": [e.to_index_dict() for e in entries],
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
