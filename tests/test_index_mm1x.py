"""mmaction2 1.x's SlowOnly entries in the index, checked against the 1.x README and metafile
(../shared/reference/mmaction2_1x/): names, aliases, URLs and hash prefixes, both sets of metrics with their
sources, the 1.x test protocol and the Kinetics-710 label file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support import SHARED, require_shared

from slowonly_zoo import index as ix

REFERENCE = SHARED / "reference" / "mmaction2_1x"
README = REFERENCE / "slowonly_README.md"
METAFILE = REFERENCE / "slowonly_metafile.yml"
K710_LABELS = SHARED / "labels" / "kinetics710.txt"
MM1X = "mmaction2-1.x"
_LINK_RE = re.compile(r"\[(\w+)\]\(([^)\s]+)\)")


def _readme_rows() -> dict[str, tuple[int, float, float, str]]:
    """config name -> (file line, top-1, top-5, ckpt URL) of every table row of the 1.x README."""
    rows = {}
    for number, line in enumerate(require_shared(README).read_text(encoding="utf-8").splitlines(), start=1):
        links = dict(_LINK_RE.findall(line))
        if "ckpt" not in links:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        config = Path(links["config"]).stem
        rows[config] = (number, float(cells[6]), float(cells[7]), links["ckpt"])
    return rows


def _metafile_models() -> list[dict]:
    return yaml.safe_load(require_shared(METAFILE).read_text(encoding="utf-8"))["Models"]


def _entry_of_config(config: str) -> ix.ModelEntry:
    (entry,) = [ix.get_model_info(n) for n in ix.list_models(provenance=MM1X) if ix.get_model_info(n).config
                and Path(ix.get_model_info(n).config).stem == config]  # fmt: skip
    return entry


def test_ten_entries_named_as_the_1x_release() -> None:
    names = ix.list_models(provenance=MM1X)
    assert len(names) == 10 and all(n.endswith("_mm1x") for n in names)
    assert sorted(Path(ix.get_model_info(n).config).stem for n in names) == sorted(_readme_rows())
    assert len(ix.list_models(provenance="mmaction2-0.x")) == 26  # untouched


@pytest.mark.parametrize("model", _metafile_models() if METAFILE.is_file() else [], ids=lambda m: m["Name"])
def test_entry_against_readme_and_metafile(model: dict) -> None:
    readme_line, top1, top5, readme_url = _readme_rows()[model["Name"]]
    entry = _entry_of_config(model["Name"])
    ck = entry.checkpoint
    # the README's file; the metafile names the same file except for K700 (an earlier one, kept as previous)
    assert ck.url == readme_url and ck.filename == readme_url.rsplit("/", 1)[-1] and ck.format == "mmaction2-pth"
    assert ck.sha256_prefix == re.search(r"-([0-9a-f]{8})\.pth$", ck.filename).group(1)
    meta_file = model["Weights"].rsplit("/", 1)[-1]
    if model["Weights"] == readme_url:
        assert ck.previous_filenames == ()
    else:
        assert "kinetics700" in model["Name"] and ck.previous_filenames == (meta_file,)
    assert ck.log_url == model["Training Log"]
    # names: the config name and the checkpoint stem resolve to the entry
    for alias in (model["Name"], ck.filename.removesuffix(".pth"), ck.filename):
        assert ix.resolve_name(alias) == entry.name
    # metrics: the README row first, then the metafile's where they differ, each naming its file and line
    metrics = model["Results"][0]["Metrics"]
    m_top1, m_top5 = metrics["Top 1 Accuracy"], metrics["Top 5 Accuracy"]
    readme_result = entry.results[0]
    assert (readme_result.top1, readme_result.top5) == (top1, top5)
    assert "README.md" in readme_result.source and readme_result.row == readme_line
    if (m_top1, m_top5) == (top1, top5):
        assert len(entry.results) == 1
    else:
        assert len(entry.results) == 2
        meta_result = entry.results[1]
        assert (meta_result.top1, meta_result.top5) == (m_top1, m_top5)
        assert "metafile.yml" in meta_result.source
        line = METAFILE.read_text(encoding="utf-8").splitlines()[meta_result.row - 1]
        assert line.strip() == f"Top 1 Accuracy: {m_top1:.2f}"
    assert entry.dataset == model["Results"][0]["Dataset"] == entry.training_data
    assert entry.pretrain == (None if model["Metadata"]["Pretrained"] == "None" else "ImageNet")
    assert entry.epochs == model["Metadata"]["Epochs"] and entry.train_resolution == model["Metadata"]["Resolution"]
    # the metafile's (and README's) Parameters are the 400-way model's for K700/K710 too: a 2048-input fc row each
    params_400 = entry.params - 2049 * (entry.num_classes - 400)
    assert round(params_400 / 1e6, 2) == float(model["Metadata"]["Parameters"].rstrip("M"))


def test_the_two_metric_sets_disagree_where_the_notes_say() -> None:
    e = ix.get_model_info("slowonly_r50_8x8x1_k400_mm1x")
    assert [(r.top1, r.top5) for r in e.results] == [(75.15, 92.11), (74.82, 91.80)]
    assert len(ix.get_model_info("slowonly_r50_8x8x1_k710_mm1x").results) == 1  # README = metafile


@pytest.mark.parametrize("name", ix.list_models(provenance=MM1X))
def test_1x_protocol(name: str) -> None:
    e = ix.get_model_info(name)
    p = e.protocol
    assert (p.num_clips, p.clip_len, p.frame_interval) == (10, e.architecture.clip_len, e.architecture.frame_interval)
    assert (p.resize_short, p.crop, p.crop_size, p.data_format, p.start_index) == (256, "three", 256, "video", 0)
    assert p.sampling == "mmaction1x" and p.data_sampling == "pyslowfast" and p.is_mmaction2
    assert p.mean == ix.RGB_MEAN and p.std == ix.RGB_STD and p.fair_pieces() == []
    assert e.architecture.head_mode == "global" and e.provenance == MM1X


def test_k710_label_file_is_mmaction2s() -> None:
    e = ix.get_model_info("slowonly_r50_8x8x1_k710_mm1x")
    assert e.num_classes == 710 and e.label_file == "labels/kinetics710.txt"
    assert e.label_path.read_bytes() == require_shared(K710_LABELS).read_bytes()
    assert len(e.labels) == 710
    k700 = ix.get_model_info("slowonly_r50_8x8x1_k700_mm1x")
    assert k700.num_classes == 700 and len(k700.labels) == 700
