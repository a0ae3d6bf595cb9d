"""FAIR's Slow R50 checkpoints: key conversion from every published layout (checked against the tensor-by-tensor
key map in ../shared/reference/keys/fair_slow_r50_key_map.tsv), the restricted Caffe2 unpickler, and numerical
parity with pytorchvideo 0.1.5 (tests/reference-requirements.txt) for the 'pytorchvideo' and 'pyslowfast' heads."""

from __future__ import annotations

import csv
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from support import KEYS_DIR, require_shared, scratch_dir

from slowonly_zoo import create_model
from slowonly_zoo.errors import CheckpointMismatchError, UnsafeCheckpointError, WeightsNotFoundError
from slowonly_zoo.models import SlowOnly
from slowonly_zoo.weights.checkpoint import read_state_dict
from slowonly_zoo.weights.fair import (
    caffe2_to_zoo,
    fair_to_zoo,
    load_caffe2_pickle,
    pyslowfast_to_zoo,
    pytorchvideo_to_zoo,
)

TOL = 1e-4


def _key_map() -> list[dict[str, str]]:
    path = require_shared(KEYS_DIR / "fair_slow_r50_key_map.tsv")
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _random_layout(column: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A state dict in one layout of the key map with random tensors, and the zoo state dict it must become."""
    gen = torch.Generator().manual_seed(0)
    source, expected = {}, {}
    for row in _key_map():
        shape = tuple(int(x) for x in row["shape"].strip("()").split(",") if x.strip())
        value = torch.randint(0, 9, shape, generator=gen) if not shape else torch.randn(shape, generator=gen)
        source[row[column]] = value
        expected[row["slowonly_zoo_key"]] = value
    return source, expected


@pytest.mark.parametrize("column", ["pyslowfast_key", "pytorchvideo_key", "pysf_ptv_wrapper_key"])
def test_every_layout_maps_to_the_zoo_keys_of_the_key_map(column: str) -> None:
    source, expected = _random_layout(column)
    converted = fair_to_zoo(source)
    assert set(converted) == set(expected) == set(SlowOnly(50, 400).state_dict())
    assert all(converted[k] is expected[k] for k in expected)


def test_caffe2_blob_names_map_to_the_zoo_keys_of_the_key_map() -> None:
    rows = [r for r in _key_map() if r["caffe2_blob_guess"]]
    assert len(rows) == 267  # every tensor but the 53 num_batches_tracked
    rng = np.random.default_rng(0)
    blobs = {r["caffe2_blob_guess"]: rng.standard_normal(eval(r["shape"])).astype(np.float32) for r in rows}
    blobs |= {"res2_0_branch2a_w_momentum": np.zeros(1, np.float32), "model_iter": np.array([7]), "lr": np.ones(1)}
    converted = caffe2_to_zoo(blobs)
    assert set(converted) == set(SlowOnly(50, 400).state_dict())
    for r in rows:
        assert torch.equal(converted[r["slowonly_zoo_key"]], torch.from_numpy(blobs[r["caffe2_blob_guess"]]))
    assert converted["backbone.layer4.2.conv3.bn.num_batches_tracked"].item() == 0


def test_conversion_is_strict() -> None:
    source, _ = _random_layout("pyslowfast_key")
    with pytest.raises(CheckpointMismatchError, match=r"s6\.pathway1_res0"):
        pyslowfast_to_zoo({**source, "s6.pathway1_res0.branch1.weight": torch.zeros(1)})
    ptv, _ = _random_layout("pytorchvideo_key")
    with pytest.raises(CheckpointMismatchError, match="detection_head"):
        pytorchvideo_to_zoo({**ptv, "detection_head.proj.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match="prefix"):
        pytorchvideo_to_zoo({**ptv, "model.blocks.5.proj.bias": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match="pred_x"):
        caffe2_to_zoo({"pred_x": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointMismatchError, match="neither"):
        fair_to_zoo({"backbone.conv1.conv.weight": torch.zeros(1)})


class _RunsCode:
    """Unpickling this calls os.system (the classic malicious pickle)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_caffe2_unpickler_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps({"blobs": {"conv1_w": _RunsCode(f"touch {marker}")}}, protocol=2)
    path = tmp_path / "SLOWONLY_8x8_R50.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        read_state_dict(path)
    with pytest.raises(UnsafeCheckpointError, match="eval"):
        load_caffe2_pickle(pickle.dumps({"x": _Eval()}))
    assert not marker.exists()
    pickle.loads(payload)  # the same bytes do run code under the plain unpickler: the test can fail
    assert marker.exists()


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_caffe2_unpickler_reads_numpy_arrays_of_a_python2_style_pickle() -> None:
    blobs = {"pred_b": np.arange(3, dtype=np.float32), "nested": [np.zeros((2, 2), np.float64), {"a": (1, 2.0)}]}
    back = load_caffe2_pickle(pickle.dumps({"blobs": blobs}, protocol=2))
    assert np.array_equal(back["blobs"]["pred_b"], blobs["pred_b"])
    assert back["blobs"]["nested"][1] == {"a": (1, 2.0)}


def test_fetching_a_fair_entry_offline_says_no_hash_is_pinned_yet(monkeypatch) -> None:
    # Online, the first download is pinned (tests/test_weights_full_hash.py); offline there is nothing to pin.
    from slowonly_zoo.weights.sources import fetch_weights

    monkeypatch.setenv("SLOWONLY_ZOO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="no hash pinned yet"):
        fetch_weights("slow_r50_8x8_k400_pytorchvideo")
    with pytest.raises(WeightsNotFoundError, match="no hash pinned yet"):
        create_model("slow_r50_8x8_k400_pyslowfast", pretrained=True)


# ------------------------------------------------------------------------------------------------------
# parity with pytorchvideo 0.1.5
# ------------------------------------------------------------------------------------------------------


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and BN statistics that keep activations in range, logits with std of a few units."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.5 + 0.25)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def ptv_8x8() -> torch.nn.Module:
    from pytorchvideo.models.hub import slow_r50

    return _randomize(slow_r50(pretrained=False), seed=1)


@pytest.fixture(scope="module")
def layouts(ptv_8x8: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The random slow_r50 saved in each published layout: pytorchvideo ``.pyth``, PySlowFast-PTV ``.pyth``
    (``model.`` prefix) and a Caffe2 ``.pkl`` with PySlowFast's blob names (from the key map)."""
    with scratch_dir(tmp_path_factory, "fair") as folder:
        state = ptv_8x8.state_dict()
        paths = {
            "pytorchvideo": folder / "SLOW_8x8_R50.pyth",
            "pysf-ptv": folder / "pysf" / "SLOW_8x8_R50.pyth",
            "caffe2": folder / "SLOWONLY_8x8_R50.pkl",
        }
        paths["pysf-ptv"].parent.mkdir()
        torch.save({"model_state": state, "epoch": 196}, paths["pytorchvideo"])
        torch.save({"model_state": {f"model.{k}": v for k, v in state.items()}}, paths["pysf-ptv"])
        rows = [r for r in _key_map() if r["caffe2_blob_guess"]]
        blobs = {r["caffe2_blob_guess"]: state[r["pytorchvideo_key"]].numpy() for r in rows}
        blobs["model_iter"] = np.array([0])
        paths["caffe2"].write_bytes(pickle.dumps({"blobs": blobs}, protocol=2))
        yield paths


def test_every_layout_loads_the_same_tensors(ptv_8x8: torch.nn.Module, layouts: dict[str, Path]) -> None:
    expected = pytorchvideo_to_zoo(ptv_8x8.state_dict())
    for kind, path in layouts.items():
        got = read_state_dict(path)
        assert set(got) == set(expected), kind
        for key, value in expected.items():
            if not key.endswith("num_batches_tracked"):  # Caffe2 keeps none: 0 there
                assert torch.equal(got[key], value), (kind, key)


def _ptv_window_probabilities(ptv: torch.nn.Module, x: torch.Tensor, frames: int) -> torch.Tensor:
    """PySlowFast's eval head on pytorchvideo's modules: (T, 7, 7) window, stride 1, the projection at every
    position, softmax per position, mean (SlowFast slowfast/models/head_helper.py ResNetBasicHead)."""
    feats = x
    for block in ptv.blocks[:5]:
        feats = block(feats)
    pooled = torch.nn.functional.avg_pool3d(feats, (frames, 7, 7), stride=1)
    logits = ptv.blocks[5].proj(pooled.permute(0, 2, 3, 4, 1))
    return torch.softmax(logits, dim=-1).mean(dim=(1, 2, 3))


@pytest.mark.slow
@pytest.mark.parametrize("crop", [224, 256])
def test_parity_with_pytorchvideo_slow_r50(ptv_8x8: torch.nn.Module, layouts: dict[str, Path], crop: int) -> None:
    x = torch.randn(1, 3, 8, crop, crop, generator=torch.Generator().manual_seed(crop))
    ptv_model = create_model("slow_r50_8x8_k400_pytorchvideo", checkpoint_path=layouts["pytorchvideo"])
    c2_model = create_model("slow_r50_8x8_k400_pyslowfast", checkpoint_path=layouts["caffe2"])
    with torch.no_grad():
        ref_logits = ptv_8x8(x)
        ref_probs = _ptv_window_probabilities(ptv_8x8, x, 8)
        ptv_probs = ptv_model(x)  # the .pyth entries use PySlowFast's head too (the workflow behind their numbers)
        probs = c2_model(x)
        feats = ptv_model.forward_features(x)
        logits = ptv_model.head.fc(ptv_model.head.pool_features(feats))  # mean of the per-position logits
    assert ref_logits.std() > 1.0  # logits that discriminate, so the comparison means something
    assert (logits - ref_logits).abs().max().item() <= TOL
    assert (probs - ref_probs).abs().max().item() <= TOL
    assert (ptv_probs - ref_probs).abs().max().item() <= TOL
    assert torch.allclose(probs.sum(dim=1), torch.ones(1))
    with torch.no_grad():
        global_probs = torch.softmax(ptv_model.head.fc(feats.mean(dim=(2, 3, 4))), dim=1)
    gap = (global_probs - probs).abs().max().item()
    if crop == 224:  # one window position: every head agrees
        assert gap <= TOL
    else:  # 2x2 positions: mmaction2's global average is not FAIR's head
        assert gap > TOL


@pytest.mark.slow
def test_parity_with_pytorchvideo_create_resnet_4x16(tmp_path: Path) -> None:
    from pytorchvideo.models.resnet import create_resnet

    ptv = _randomize(create_resnet(stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(4, 7, 7)), seed=2)
    path = tmp_path / "SLOW_4x16_R50.pyth"
    torch.save({"model_state": {f"model.{k}": v for k, v in ptv.state_dict().items()}}, path)
    x = torch.randn(1, 3, 4, 256, 256, generator=torch.Generator().manual_seed(4))
    model = create_model("slow_r50_4x16_k400_pytorchvideo", checkpoint_path=path)
    with torch.no_grad():
        assert ptv(x).std() > 1.0
        ref = _ptv_window_probabilities(ptv, x, 4)
        got = model(x)
    assert (got - ref).abs().max().item() <= TOL
