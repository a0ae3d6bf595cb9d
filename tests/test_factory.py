"""create_model's contract: names are not paths, metadata is plain data that belongs to the weights, checkpoints are
fitted before strict loading, timm sees each model's real data config, untrained models start as upstream's do,
and the package's top level is lazy."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import torch
from reference import build_mmaction_recognizer, randomize_
from support import REPO_ROOT, VIDEOS, fresh_python, require_shared

import slowonly_zoo
from slowonly_zoo import factory
from slowonly_zoo.errors import CheckpointMismatchError, InferenceError, ModelOptionError
from slowonly_zoo.factory import build_architecture, class_names_of, create_model
from slowonly_zoo.index import get_model_info
from slowonly_zoo.inference import Predictor, load_model
from slowonly_zoo.weights.adapt import adapt_stem_kernel, fit_state_dict
from slowonly_zoo.weights.checkpoint import CLASS_NAMES_METADATA_KEY, save_safetensors
from slowonly_zoo.weights.convert import zoo_to_upstream

K400 = "slowonly_r50_4x16x1_k400"
UPSTREAM_FILE = "slowonly_r50_8x8x1_256e_kinetics400_rgb_20200703-a79c555a.pth"


def _finetuned(num_classes: int = 5, in_chans: int = 3, seed: int = 3) -> dict[str, torch.Tensor]:
    """A zoo-layout state dict of K400's architecture with another head size / channel count (a fine-tune)."""
    model = build_architecture(get_model_info(K400), num_classes=num_classes, in_channels=in_chans)
    return randomize_(model, seed).state_dict()


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


# -- 1. a name that is a path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        f"/some/dir/{UPSTREAM_FILE}",  # resolved as the file-stem alias before, with no file read
        UPSTREAM_FILE,
        "slowonly_r50_8x8x1_k400.safetensors",
        r"C:\weights\slowonly_r50_8x8x1_k400",
        "hub/slowonly_r50_8x8x1_k400",
    ],
)
def test_a_path_as_the_model_name_is_refused_with_a_pointer_to_checkpoint_path(name):
    with pytest.raises(ModelOptionError, match=r"checkpoint_path="):
        create_model(name)
    with pytest.raises(ModelOptionError, match=r"slowonly_r50_8x8x1_k400"):  # the message names the model
        create_model(name, pretrained=True)


def test_a_name_that_exists_on_disk_is_refused_unless_the_weights_come_from_checkpoint_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / K400).mkdir()  # e.g. an export folder named after the model
    with pytest.raises(ModelOptionError, match=rf"checkpoint_path='{K400}'"):
        create_model(K400)
    path = tmp_path / "weights.safetensors"
    save_safetensors(build_architecture(get_model_info(K400)).state_dict(), path, {})
    assert create_model(K400, checkpoint_path=path).num_classes == 400  # the name is then only a name


def test_predict_refuses_a_path_as_the_model_name():
    with pytest.raises(ModelOptionError, match="checkpoint_path="):
        load_model(f"/some/dir/{UPSTREAM_FILE}", pretrained=False, device="cpu")


def test_timm_and_torch_hub_refuse_paths_as_names():
    import timm

    with pytest.raises(ValueError, match="looks like"):
        timm.create_model(f"/some/dir/{UPSTREAM_FILE}")
    with pytest.raises(RuntimeError, match="Cannot find callable"):
        torch.hub.load(str(REPO_ROOT), f"/some/dir/{UPSTREAM_FILE}", source="local")


# -- 2. metadata is plain data; class names belong to the weights ----------------------------------


def test_pretrained_cfg_is_plain_data_and_a_replaced_head_has_no_class_names():
    model = create_model(K400, num_classes=5)
    cfg = model.pretrained_cfg
    assert _plain(cfg), cfg
    assert "entry" not in cfg
    assert cfg["architecture"] == K400 and cfg["num_classes"] == 5 and cfg["label_names"] is None
    assert class_names_of(model) == ()
    # the entry's own head keeps the entry's names
    full = create_model(K400)
    assert full.pretrained_cfg["label_names"] == get_model_info(K400).labels
    assert class_names_of(full)[:2] == ("abseiling", "air drumming")


def test_class_names_option_names_a_new_head_and_is_checked():
    model = create_model(K400, num_classes=3, class_names=["pour", "stir", "whisk"])
    assert class_names_of(model) == ("pour", "stir", "whisk")
    with pytest.raises(ModelOptionError, match="4 names but the head has 3 outputs"):
        create_model(K400, num_classes=3, class_names=["a", "b", "c", "d"])
    with pytest.raises(ModelOptionError, match="sequence of strings"):
        create_model(K400, num_classes=3, class_names="abc")


def test_names_are_never_read_back_from_a_model_they_no_longer_fit():
    model = create_model(K400)
    model.reset_classifier(7)
    assert class_names_of(model) == ()
    assert Predictor(model, device="cpu").labels == ()


def test_a_model_with_other_input_channels_does_not_borrow_the_entrys_protocol():
    model = create_model(K400, in_chans=2)
    assert model.pretrained_cfg["protocol"] is None and "mean" not in model.pretrained_cfg
    with pytest.raises(InferenceError, match="takes 2 input channels"):
        Predictor(model, device="cpu")


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_class_names_recorded_in_a_checkpoint_name_its_head(tmp_path, fmt):
    names = ["apple", "banana", "cherry", "date", "elderberry"]
    state = _finetuned(num_classes=5)
    if fmt == "safetensors":
        path = tmp_path / "ft.safetensors"
        save_safetensors(state, path, {CLASS_NAMES_METADATA_KEY: json.dumps(names)})
    else:
        path = tmp_path / "ft.pth"
        torch.save({"meta": {"class_names": names}, "state_dict": zoo_to_upstream(state)}, path)
    model = create_model(K400, checkpoint_path=path, num_classes=5)
    assert torch.equal(model.head.fc.weight, state["head.fc.weight"])
    assert class_names_of(model) == tuple(names)
    # a head replaced on load drops them
    assert class_names_of(create_model(K400, checkpoint_path=path, num_classes=2)) == ()


def test_class_names_that_do_not_fit_the_checkpoint_head_are_an_error(tmp_path):
    path = tmp_path / "ft.safetensors"
    save_safetensors(_finetuned(num_classes=2), path, {CLASS_NAMES_METADATA_KEY: json.dumps(["a", "b", "c"])})
    with pytest.raises(CheckpointMismatchError, match="3 names but the head has 2 outputs"):
        create_model(K400, checkpoint_path=path, num_classes=2)


@pytest.mark.slow
def test_predict_prints_indices_for_a_head_without_names():
    video = require_shared(VIDEOS / "archery.avi")
    model = create_model(K400, num_classes=5)
    prediction = Predictor(model, clips=1, device="cpu").predict_one(video, topk=3)
    assert [c.label for c in prediction.topk] == [None, None, None]
    assert all(0 <= c.index < 5 for c in prediction.topk) and prediction.probs.shape == (5,)
    named = create_model(K400, num_classes=5, class_names=list("abcde"))
    top = Predictor(named, clips=1, device="cpu").predict_one(video, topk=5).topk
    assert sorted(c.label for c in top) == list("abcde")


# -- 3. the checkpoint is fitted to the model, then loaded strictly --------------------------------


def test_a_finetuned_checkpoint_with_its_own_head_and_stem_loads_strictly(tmp_path):
    """The model is built at the asked size, so a 5-way 2-channel fine-tune of an RGB K400 entry loads as it is
    (building the K400 model first and replacing modules afterwards could not load it at all)."""
    state = _finetuned(num_classes=5, in_chans=2)
    path = tmp_path / "flow_ft.safetensors"
    save_safetensors(state, path, {})
    model = create_model(K400, checkpoint_path=path, num_classes=5, in_chans=2)
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert model.backbone.stem.conv.in_channels == 2 and model.in_channels == 2


def test_adapting_on_load_changes_only_head_and_stem_and_keeps_strictness(tmp_path):
    state = _finetuned(num_classes=400, in_chans=3, seed=9)
    path = tmp_path / "k400.safetensors"
    save_safetensors(state, path, {})
    model = create_model(K400, checkpoint_path=path, num_classes=10, in_chans=2)
    loaded = model.state_dict()
    assert torch.equal(loaded["backbone.stem.conv.weight"], adapt_stem_kernel(state["backbone.stem.conv.weight"], 2))
    assert loaded["head.fc.weight"].shape == (10, 2048) and float(loaded["head.fc.weight"].std()) < 0.02
    assert torch.equal(loaded["head.fc.bias"], torch.zeros(10))
    others = [k for k in state if k not in ("backbone.stem.conv.weight", "head.fc.weight", "head.fc.bias")]
    assert all(torch.equal(loaded[k], state[k]) for k in others)
    del state["backbone.layer2.1.conv1.bn.running_mean"]
    save_safetensors(state, path, {})
    with pytest.raises(CheckpointMismatchError, match=r"missing: backbone\.layer2\.1\.conv1\.bn\.running_mean"):
        create_model(K400, checkpoint_path=path, num_classes=10, in_chans=2)


def test_fit_state_dict_drops_the_classifier_for_a_headless_model():
    state = _finetuned(num_classes=5)
    target = build_architecture(get_model_info(K400), num_classes=0).state_dict()
    fitted, adaptation = fit_state_dict(state, target, replace_classifier=True, adapt_stem=False)
    assert "head.fc.weight" not in fitted and adaptation.classifier_replaced and not adaptation.stem_adapted
    assert (adaptation.from_classes, adaptation.to_classes) == (5, 0)


def test_the_stem_is_defined_only_in_models():
    assert "Conv3d" not in inspect.getsource(factory)


# -- 4. timm's view of each model ------------------------------------------------------------------


@pytest.mark.slow
def test_timm_sees_each_models_real_data_config():
    code = """
import json, slowonly_zoo, timm
from timm.data import resolve_data_config
m = timm.create_model('slowonly_r50_8x8x1_k400')
cfg = m.pretrained_cfg
out = dict(
    model=resolve_data_config({}, model=m),
    registry=resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg('slowonly_r50_8x4x1_sthv1').to_dict()),
    names=list(cfg['label_names'][:2]), num_classes=cfg['num_classes'],
    sthv1_names=len(timm.models.get_pretrained_cfg('slowonly_r50_8x4x1_sthv1').label_names),
    replaced=[timm.create_model('slowonly_r50_8x8x1_k400', num_classes=5).pretrained_cfg[k]
              for k in ('num_classes', 'label_names')],
)
print(json.dumps(out))
"""
    out = json.loads(fresh_python(code))
    model = out["model"]
    assert model["interpolation"] == "bilinear" and model["crop_mode"] == "center"
    assert model["input_size"] == [3, 256, 256] and model["crop_pct"] == 1.0  # three 256 crops at short side 256
    assert model["mean"] == pytest.approx([0.485, 0.456, 0.406], abs=1e-6)
    assert model["std"] == pytest.approx([0.229, 0.224, 0.225], abs=1e-6)
    assert out["names"] == ["abseiling", "air drumming"] and out["num_classes"] == 400
    registry = out["registry"]
    assert registry["input_size"] == [3, 128, 128] and registry["interpolation"] == "bilinear"
    assert out["sthv1_names"] == 174
    assert out["replaced"] == [5, None]


def test_timm_flow_models_carry_the_flow_normalisation():
    cfg = factory.timm_pretrained_cfg(get_model_info("slowonly_r50_4x16x1_k400_flow"))
    assert cfg["input_size"] == (2, 256, 256)
    assert cfg["mean"] == pytest.approx((128 / 255, 128 / 255)) and cfg["std"] == pytest.approx((128 / 255,) * 2)


# -- 5. untrained models start as upstream's ---------------------------------------------------------


def test_untrained_weights_follow_upstreams_initialisation():
    """Per tensor, against mmaction2's own recognizer after ``init_weights()``: constants (BN, biases, the zeroed
    last BN of every bottleneck) equal, random tensors with the same mean and standard deviation."""
    torch.manual_seed(0)
    upstream = build_mmaction_recognizer(non_local=True)
    upstream.init_weights()
    expected = upstream.state_dict()
    ours = zoo_to_upstream(create_model("slowonly_r50_nl_4x16x1_k400").state_dict())
    assert list(ours) == list(expected)
    for key, value in ours.items():
        reference = expected[key]
        if not reference.is_floating_point() or reference.numel() == 1:
            continue
        if float(reference.std()) == 0.0:
            assert torch.equal(value, reference), key
            continue
        std, ref_std = float(value.std()), float(reference.std())
        assert abs(std / ref_std - 1) < 0.05, (key, std, ref_std)
        assert abs(float(value.mean())) < 5 * ref_std / math.sqrt(value.numel()), key


def test_init_weights_reinitialises_a_trained_model():
    model = randomize_(build_architecture(get_model_info(K400)), 1)
    model.init_weights()
    assert torch.equal(model.backbone.layer3[2].conv3.bn.weight, torch.zeros(1024))
    assert torch.equal(model.backbone.stem.bn.running_var, torch.ones(64))
    assert abs(float(model.head.fc.weight.detach().std()) - 0.01) < 0.0005


# -- the package's top level -------------------------------------------------------------------------


def test_the_index_imports_without_torch_and_the_package_is_lazy():
    code = (
        "import sys, slowonly_zoo\n"
        "assert 'torch' not in sys.modules, 'import slowonly_zoo imported torch'\n"
        "import slowonly_zoo.index\n"
        "slowonly_zoo.get_model_info('slowonly_r50_8x8x1_k400').labels\n"
        "assert 'torch' not in sys.modules, 'slowonly_zoo.index imported torch'\n"
        "print('ok')\n"
    )
    assert fresh_python(code) == "ok"


README_API = [
    "create_model",
    "list_models",
    "get_model_info",
    "resolve_name",
    "register_model_entry",
    "ModelEntry",
    "SlowOnly",
    "predict",
    "extract",
    "verify",
    "optimize_for_inference",
    "SlowOnlyZooError",
    "UnknownModelError",
    "CheckpointMismatchError",
    "InferenceError",
    "ModelOptionError",
    "__version__",
]


@pytest.mark.parametrize("name", README_API)
def test_the_top_level_exports_the_public_api(name):
    assert name in dir(slowonly_zoo) and name in slowonly_zoo.__all__
    assert getattr(slowonly_zoo, name) is not None


def test_the_top_level_errors_are_the_errors_module_classes():
    from slowonly_zoo import errors

    assert all(getattr(slowonly_zoo, n) is getattr(errors, n) for n in errors.__all__)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        slowonly_zoo.not_a_name


def test_one_register_model_entry_reaches_timm_after_it_was_imported():
    """The index's register_model_entry is the top level's, and an entry added after timm was imported is
    registered with timm at once (timm held a stale view when the index's function was called directly)."""
    code = (
        "import slowonly_zoo, slowonly_zoo.index, timm\n"
        "assert slowonly_zoo.register_model_entry is slowonly_zoo.index.register_model_entry\n"
        "base = slowonly_zoo.index.entry_to_index(slowonly_zoo.get_model_info('slowonly_r50_8x4x1_ucf101_k400'))\n"
        "slowonly_zoo.index.register_model_entry(dict(base, Name='my_late_slowonly', Alias=[], Config=None))\n"
        "assert 'my_late_slowonly' in timm.list_models('my_late*', pretrained=True)\n"
        "m = timm.create_model('my_late_slowonly', num_classes=3)\n"
        "print(m.pretrained_cfg['architecture'], m.num_classes)\n"
    )
    assert fresh_python(code) == "my_late_slowonly 3"
