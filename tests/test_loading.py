"""Upstream checkpoint layout, strict loading, adaptation on load, torch.hub and timm entry points."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from support import KEYS_DIR, REPO_ROOT, fresh_python, require_shared
from upstream_checkpoints import randomized_upstream_state_dict, save_published, write_upstream_checkpoint

import slowonly_zoo
from slowonly_zoo.factory import build_architecture
from slowonly_zoo.weights.checkpoint import UnsafeCheckpointError, read_state_dict
from slowonly_zoo.weights.convert import CheckpointMismatchError, upstream_to_zoo, zoo_to_upstream


def _family(entry) -> str:
    arch = entry.architecture
    if arch.depth == 101:
        return "slowonly_r101_k400_rgb"
    if arch.non_local:
        return "slowonly_r50_nl_embedded_gaussian_k400_rgb"
    return "slowonly_r50_k400_flow" if arch.in_channels == 2 else "slowonly_r50_k400_rgb"


SINGLE_MODELS = [name for name in slowonly_zoo.list_models() if not slowonly_zoo.get_model_info(name).members]


def test_there_are_41_single_checkpoint_models():
    # 25 mmaction2 0.x + 10 mmaction2 1.x (tests/test_index_mm1x.py) + 6 FAIR (tests/test_index_fair.py)
    assert len(SINGLE_MODELS) == 41


@pytest.mark.parametrize("name", SINGLE_MODELS)
def test_upstream_key_layout_matches_the_reference_key_lists(name):
    """Every entry's architecture, written in upstream layout, has exactly the reference file's keys, shapes,
    dtypes and order (the head sized for the entry's dataset)."""
    tsv = require_shared(KEYS_DIR / f"{_family(slowonly_zoo.get_model_info(name))}.tsv")
    entry = slowonly_zoo.get_model_info(name)
    with open(tsv) as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    expected = []
    for key, shape, dtype in rows:
        if key == "cls_head.fc_cls.weight":
            shape = f"({entry.num_classes}, 2048)"
        elif key == "cls_head.fc_cls.bias":
            shape = f"({entry.num_classes},)"
        expected.append((key, shape, dtype))
    state = zoo_to_upstream(build_architecture(entry).state_dict())
    actual = [(k, str(tuple(v.shape)), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert actual == expected
    assert sum(p.numel() for p in build_architecture(entry).parameters()) == entry.params


def test_gym99_heads_are_400_way():
    for name in ("slowonly_r50_4x16x1_gym99", "slowonly_r50_4x16x1_gym99_flow"):
        assert build_architecture(slowonly_zoo.get_model_info(name)).num_classes == 400


def test_round_trip_of_key_conversion():
    state = randomized_upstream_state_dict("slowonly_r50_nl_4x16x1_k400", seed=1)
    assert list(zoo_to_upstream(upstream_to_zoo(state))) == list(state)


def test_module_prefix_is_stripped(tmp_path):
    state = {f"module.{k}": v for k, v in randomized_upstream_state_dict("slowonly_r50_8x4x1_ucf101_k400").items()}
    path = save_published(state, tmp_path, "ddp")
    model = slowonly_zoo.create_model("slowonly_r50_8x4x1_ucf101_k400", checkpoint_path=path)
    assert torch.equal(model.head.fc.bias, state["module.cls_head.fc_cls.bias"])


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    state = randomized_upstream_state_dict("slowonly_r50_8x8x1_k400")
    del state["backbone.layer3.2.conv2.bn.running_var"]
    path = save_published(state, tmp_path, "missing")
    with pytest.raises(CheckpointMismatchError, match=r"missing: backbone\.layer3\.2\.conv2\.bn\.running_var"):
        slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", checkpoint_path=path)

    state = randomized_upstream_state_dict("slowonly_r50_8x8x1_k400")
    state["backbone.layer1.0.extra.weight"] = torch.zeros(1)
    path = save_published(state, tmp_path, "unexpected")
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.layer1\.0\.extra\.weight"):
        slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", checkpoint_path=path)

    # a K600 checkpoint loaded as a K400 model: the head has the wrong shape
    path = write_upstream_checkpoint(tmp_path, "slowonly_r50_8x8x1_k600")
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped: head\.fc\.weight \(checkpoint \(600, 2048\)"):
        slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", checkpoint_path=path)


class _NotATensor:
    pass


def test_checkpoints_needing_arbitrary_unpickling_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"meta": {"obj": _NotATensor()}, "state_dict": {}}, path)
    with pytest.raises(UnsafeCheckpointError, match="refuses"):
        read_state_dict(path)


def test_num_classes_and_in_chans_adaptation_is_explicit_and_logged(tmp_path, caplog):
    path = write_upstream_checkpoint(tmp_path, "slowonly_r50_4x16x1_k400", seed=5)
    full = slowonly_zoo.create_model("slowonly_r50_4x16x1_k400", checkpoint_path=path)
    with caplog.at_level(logging.INFO, logger="slowonly_zoo"):
        model = slowonly_zoo.create_model("slowonly_r50_4x16x1_k400", checkpoint_path=path, num_classes=10, in_chans=2)
    assert "classifier replaced (400 -> 10" in caplog.text
    assert "stem adapted from 3 to 2 input channels" in caplog.text
    assert model.num_classes == 10 and model.in_channels == 2
    assert torch.equal(model.backbone.layer4[2].conv3.conv.weight, full.backbone.layer4[2].conv3.conv.weight)
    # constant input: the adapted stem responds as the original one did
    x3, x2 = torch.ones(1, 3, 1, 32, 32), torch.ones(1, 2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.stem.conv(x2), full.backbone.stem.conv(x3), rtol=1e-5, atol=1e-5)
        assert model(torch.randn(1, 2, 4, 64, 64)).shape == (1, 10)


def test_wrong_input_shape_is_a_clear_error():
    model = slowonly_zoo.create_model("slowonly_r50_4x16x1_k400_flow")
    with pytest.raises(ValueError, match=r"expects a float tensor of shape \(N, 2, T, H, W\)"):
        model(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(ValueError, match=r"got shape \(3, 4, 64, 64\)"):
        model(torch.randn(3, 4, 64, 64))


def test_ensemble_entry_is_not_a_single_network():
    with pytest.raises(ValueError, match="ensemble"):
        slowonly_zoo.create_model("slowonly_r50_4x16x1_gym99_fusion")


def test_model_api_and_metadata(tmp_path):
    model = slowonly_zoo.create_model("slowonly_r50_8x4x1_sthv1")
    assert model.pretrained_cfg["architecture"] == "slowonly_r50_8x4x1_sthv1"
    assert model.pretrained_cfg["dataset"] == "Something-Something V1"
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 2048, 8, 4, 4)  # no stem pool: stride 16
        assert model.forward_head(feats, pre_logits=True).shape == (1, 2048)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (1, 2048)


def test_torch_hub_local_checkout(tmp_path):
    import importlib.util

    # what torch.hub.list would show (it only lists GitHub repos): the public callables of hubconf.py
    spec = importlib.util.spec_from_file_location("_hubconf_under_test", REPO_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entrypoints = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")]
    assert "slowonly_r50_8x8x1_k400" in entrypoints and "list_models" in entrypoints
    assert "slowonly_r50_4x16x1_gym99_fusion" not in entrypoints
    assert len([n for n in entrypoints if n.startswith("slowonly_")]) == 35  # 25 mmaction2 0.x + 10 1.x
    assert len([n for n in entrypoints if n.startswith("slow_r50_")]) == 6  # FAIR's; not the AVA detector
    assert "Build a SlowOnly model" in hubconf.slowonly_r50_8x8x1_k400.__doc__

    names = torch.hub.load(str(REPO_ROOT), "list_models", source="local", pattern="*_k400")
    assert "slowonly_r50_8x8x1_k400" in names
    path = write_upstream_checkpoint(tmp_path, "slowonly_r50_8x8x1_k400", seed=2)
    model = torch.hub.load(
        str(REPO_ROOT), "slowonly_r50_8x8x1_k400", source="local", pretrained=False, checkpoint_path=path
    )
    reference = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", checkpoint_path=path)
    assert torch.equal(model.head.fc.weight, reference.head.fc.weight)
    untrained = torch.hub.load(str(REPO_ROOT), "slowonly_r50_8x8x1_k400", source="local", pretrained=False)
    assert untrained.num_classes == 400


def test_timm_registration(tmp_path):
    import timm

    assert len(timm.list_models("slowonly*", pretrained=True)) == 35  # 25 mmaction2 0.x + 10 1.x
    assert len(timm.list_models("slow_r50_*", pretrained=True)) == 6  # FAIR's
    path = write_upstream_checkpoint(tmp_path, "slowonly_r50_8x4x1_hmdb51_in1k", seed=4)
    model = timm.create_model("slowonly_r50_8x4x1_hmdb51_in1k", pretrained_cfg_overlay=dict(file=str(path)))
    assert model.num_classes == 51
    assert torch.equal(model.head.fc.weight, read_state_dict(path)["head.fc.weight"])
    assert timm.create_model("slowonly_r50_8x4x1_hmdb51_in1k", num_classes=5).num_classes == 5


def test_timm_registration_does_not_import_timm_eagerly():
    """``import slowonly_zoo`` leaves timm alone (it costs ~2 s) but registers the moment timm is imported."""
    code = (
        "import sys, slowonly_zoo, slowonly_zoo.index\n"
        "assert 'timm' not in sys.modules\n"
        "slowonly_zoo.register_model_entry(dict(slowonly_zoo.index.entry_to_index(slowonly_zoo.get_model_info('slowonly_r50_8x8x1_k400')),"
        " Name='my_finetuned_slowonly', Alias=[], Config=None))\n"
        "import timm\n"
        "names = timm.list_models('*slowonly*', pretrained=True)\n"
        "assert len(names) == 36 and 'my_finetuned_slowonly' in names, names\n"
        "print('ok')\n"
    )
    assert fresh_python(code) == "ok"


def test_timm_registration_survives_a_find_spec_probe():
    """torch.hub's dependency check probes timm with find_spec before anything imports it."""
    code = (
        "import importlib.util, sys, slowonly_zoo\n"
        "assert importlib.util.find_spec('timm') is not None and 'timm' not in sys.modules\n"
        "import timm\n"
        "print(len(timm.list_models('slowonly*', pretrained=True)))\n"
    )
    assert fresh_python(code) == "35"
