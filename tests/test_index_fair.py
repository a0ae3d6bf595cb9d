"""FAIR's Slow R50 entries in the index (../shared/reference/fair_slow_checkpoints.md): names, provenance, formats,
URLs without hash prefixes, reported numbers, heads, protocols, and the AVA detector recorded as not supported."""

from __future__ import annotations

import pytest
import yaml

from slowonly_zoo import create_model
from slowonly_zoo import index as ix
from slowonly_zoo.errors import UnsupportedModelError

FAIR = {  # name -> (provenance, format, file path below https://dl.fbaipublicfiles.com/, top-1, top-5, mAP)
    "slow_r50_4x16_k400_pytorchvideo": (
        "pytorchvideo", "pytorchvideo-pyth", "pytorchvideo/model_zoo/kinetics/SLOW_4x16_R50.pyth", 72.40, 90.18, None,
    ),
    "slow_r50_8x8_k400_pytorchvideo": (
        "pytorchvideo", "pytorchvideo-pyth", "pytorchvideo/model_zoo/kinetics/SLOW_8x8_R50.pyth", 74.58, 91.63, None,
    ),
    "slow_r50_4x16_k400_pyslowfast": (
        "pyslowfast", "caffe2-pkl", "pyslowfast/model_zoo/kinetics400/SLOWONLY_4x16_R50.pkl", 72.7, 90.3, None,
    ),
    "slow_r50_8x8_k400_pyslowfast": (
        "pyslowfast", "caffe2-pkl", "pyslowfast/model_zoo/kinetics400/SLOWONLY_8x8_R50.pkl", 74.8, 91.6, None,
    ),
    "slow_r50_8x8_ssv2_pytorchvideo": (
        "pytorchvideo", "pytorchvideo-pyth", "pytorchvideo/model_zoo/ssv2/SLOW_8x8_R50.pyth", 60.04, 85.19, None,
    ),
    "slow_r50_8x8_charades_pytorchvideo": (
        "pytorchvideo", "pytorchvideo-pyth", "pytorchvideo/model_zoo/charades/SLOW_8x8_R50.pyth", None, None, 34.72,
    ),
}  # fmt: skip
AVA = "slow_r50_4x16_ava_pytorchvideo"


def test_provenance_filter_lists_fair_entries() -> None:
    listed = ix.list_models(provenance="pytorchvideo") + ix.list_models(provenance="pyslowfast")
    assert sorted(listed) == sorted(FAIR)
    assert len(ix.list_models(provenance="mmaction2-0.x")) == 26
    assert AVA not in ix.list_models() and AVA in ix.list_models(supported=False, provenance="pytorchvideo")


@pytest.mark.parametrize("name", sorted(FAIR))
def test_fair_entry_facts(name: str) -> None:
    provenance, fmt, path, top1, top5, m_ap = FAIR[name]
    e = ix.get_model_info(name)
    assert (e.provenance, e.checkpoint.format) == (provenance, fmt)
    assert e.checkpoint.url == "https://dl.fbaipublicfiles.com/" + path
    assert e.checkpoint.sha256_prefix is None  # FAIR's file names carry no hash
    r = e.primary_result
    assert (r.top1, r.top5, r.mean_average_precision) == (top1, top5, m_ap)
    a, p = e.architecture, e.protocol
    assert a.head_mode == "pyslowfast"  # both kinds of file were scored by PySlowFast's test workflow
    assert (a.depth, a.non_local, a.with_pool1) == (50, False, True)
    assert p.mean == (114.75,) * 3 and p.std == (57.375,) * 3  # x / 255, mean 0.45, std 0.225
    assert (p.resize_short, p.crop, p.crop_size) == (256, "three", 256)
    assert not p.is_mmaction2
    if "k400" in name:
        assert (p.sampling, p.target_fps, p.num_views, p.view_ensemble) == ("pyslowfast-decoder", 30.0, 30, "sum")
        assert e.labels[290] == "sharpening knives"  # PySlowFast's Kinetics ids: alphabetical, as in this file
    if "ssv2" in name:
        assert (p.sampling, p.num_clips, p.num_views, e.num_classes) == ("segment-middle", 1, 3, 174)
    if "charades" in name:
        assert (p.view_ensemble, p.score_activation, p.metric, p.num_views) == ("max", "sigmoid", "mAP", 30)
        assert e.num_classes == 157


def test_hub_alias_of_pytorchvideo() -> None:
    assert ix.resolve_name("slow_r50") == "slow_r50_8x8_k400_pytorchvideo"
    assert ix.resolve_name("SLOWONLY_8x8_R50") == "slow_r50_8x8_k400_pyslowfast"


def test_ava_detector_is_recorded_as_not_supported() -> None:
    e = ix.get_model_info("slow_r50_detection")
    assert e.name == AVA and not e.supported and "RoI" in e.unsupported
    assert e.primary_result.mean_average_precision == 19.5 and e.primary_result.task == "Action Detection"
    with pytest.raises(UnsupportedModelError, match="cannot build it: an AVA action detector"):
        create_model(AVA)


def test_mmaction2_entries_keep_their_yaml_keys() -> None:
    """The FAIR-only keys are written only where they differ from the mmaction2 defaults."""
    doc = yaml.safe_load((ix.get_model_info.__globals__["_packaged_index_text"])())
    for m in doc["Models"]:
        if m["Provenance"] != "mmaction2-0.x":
            continue
        assert "Head Mode" not in (m.get("Architecture") or {})
        assert not {"Sampling", "Target FPS", "View Ensemble", "Score Activation", "Metric"} & set(
            m.get("Test Protocol") or {}
        )
        assert "Not Supported" not in m


def test_schema_needs_a_prefix_for_mmaction2_files_only() -> None:
    d = ix.entry_to_index(ix.get_model_info("slowonly_r50_8x8x1_k400"))
    d["Checkpoint"] = dict(d["Checkpoint"], **{"SHA256 Prefix": None})
    with pytest.raises(ix.ModelIndexError, match="needs its 'SHA256 Prefix'"):
        ix.entry_from_index(d)
    d["Checkpoint"]["Format"] = "pytorchvideo-pyth"
    assert ix.entry_from_index(d).checkpoint.sha256_prefix is None
    d["Provenance"] = "somebody"
    with pytest.raises(ix.ModelIndexError, match="Provenance"):
        ix.entry_from_index(d)
    f = ix.entry_to_index(ix.get_model_info("slow_r50_8x8_k400_pyslowfast"))
    f["Test Protocol"]["Sampling"] = "mmaction0x"  # keeps a Target FPS only the decoder sampling uses
    with pytest.raises(ix.ModelIndexError, match="Target FPS"):
        ix.entry_from_index(f)
    f = ix.entry_to_index(ix.get_model_info("slow_r50_8x8_k400_pyslowfast"))
    f["Architecture"]["Head Mode"] = "fancy"
    with pytest.raises(ix.ModelIndexError, match="Head Mode"):
        ix.entry_from_index(f)
