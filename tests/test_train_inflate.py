"""ImageNet inflation: ``slowonly_zoo.training.inflate_imagenet`` against mmaction2 0.24.1's ``inflate_weights``.

The same random torchvision ResNet-50 state dict (random BN statistics too, so copied buffers are checked) goes
into the 0.x backbones built from the 0.x ImageNet-initialised configs (``backbone.pretrained`` pointed at the
saved file; ``init_weights`` runs ``ResNet3dPathway.inflate_weights``) and into the zoo model. Both models are
filled with NaN (integer buffers with -1) before inflating, so what each wrote is exactly what is no longer NaN:
the written sets must be the same, tensor for tensor equal, and match the zoo's report. RGB, non-local and flow
(flow: the stem conv is skipped and reported, its BN still copied).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from reference0x import CONFIGS_0X, run_reference_0x

from slowonly_zoo.models import SlowOnly
from slowonly_zoo.training import InflationError, InflationReport, inflate_imagenet
from slowonly_zoo.weights.convert import zoo_to_upstream

VARIANTS = {
    "rgb": ("slowonly_imagenet_pretrained_r50_8x8x1_150e_kinetics400_rgb", dict(in_channels=3, non_local=False)),
    "nl": ("slowonly_nl_embedded_gaussian_r50_8x8x1_150e_kinetics400_rgb", dict(in_channels=3, non_local=True)),
    "flow": ("slowonly_r50_8x8x1_256e_kinetics400_flow", dict(in_channels=2, non_local=False)),
}

_INFLATE = """
from mmcv import Config
from mmaction.models import build_model

for variant, config in inputs["configs"].items():
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.pretrained == "torchvision://resnet50", cfg.model.backbone.pretrained
    assert cfg.model.backbone.get("pretrained2d", True)
    cfg.model.backbone.pretrained = inputs["resnet50"]  # the same 2D weights, from a local file
    model = build_model(cfg.model)
    with torch.no_grad():
        for value in model.backbone.state_dict().values():
            value.fill_(float("nan") if value.is_floating_point() else -1)
    model.backbone.init_weights()  # pretrained2d: ResNet3dPathway.inflate_weights
    outputs[variant] = {f"backbone.{k}": v.clone() for k, v in model.backbone.state_dict().items()}
"""


def random_resnet50_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    state = model.state_dict()
    gen = torch.Generator().manual_seed(1)
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var", "bn1.weight", "bn2.weight", "bn3.weight", "bias")):
            state[key] = torch.rand(value.shape, generator=gen) + 0.25  # nothing left at its 0 / 1 default
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
    return state


def written(state: dict[str, torch.Tensor]) -> set[str]:
    """Keys of tensors no longer NaN / -1 after inflating into a NaN-filled model."""
    out = set()
    for key, value in state.items():
        untouched = torch.isnan(value).all() if value.is_floating_point() else (value == -1).all()
        if not untouched:
            assert not (torch.isnan(value).any() if value.is_floating_point() else False), key  # all or nothing
            out.add(key)
    return out


@pytest.fixture(scope="module")
def resnet50() -> dict[str, torch.Tensor]:
    return random_resnet50_state()


@pytest.fixture(scope="module")
def reference(resnet50, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inflate0x")
    path = tmp / "resnet50_random.pth"
    torch.save(resnet50, path)
    configs = {variant: str(CONFIGS_0X / f"{config}.py") for variant, (config, _) in VARIANTS.items()}
    return run_reference_0x(_INFLATE, tmp, dict(configs=configs, resnet50=str(path)))


def inflate_zoo(variant: str, state_2d: dict[str, torch.Tensor]) -> tuple[SlowOnly, InflationReport]:
    model = SlowOnly(depth=50, num_classes=400, **VARIANTS[variant][1])
    with torch.no_grad():
        for value in model.state_dict().values():
            value.fill_(float("nan") if value.is_floating_point() else -1)
    return model, inflate_imagenet(state_2d, model)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_inflation_equals_mmaction2_0x(resnet50, reference, variant):
    model, report = inflate_zoo(variant, resnet50)
    ours = zoo_to_upstream(model.state_dict())
    theirs = reference[variant]
    ours_backbone = {k: v for k, v in ours.items() if k.startswith("backbone.")}
    assert ours_backbone.keys() == theirs.keys()
    assert written(ours_backbone) == written(theirs)
    assert written(ours) == set(zoo_to_upstream({k: torch.empty(0) for k in report.loaded}))  # the report is true
    for key in written(theirs):
        assert torch.equal(ours[key], theirs[key]), key
    # what stayed initialised: non-local blocks, the head, and the flow stem conv
    kept = set(zoo_to_upstream({k: torch.empty(0) for k in report.kept}))
    skipped = set(zoo_to_upstream({k: torch.empty(0) for k, _ in report.skipped}))
    assert kept | skipped | written(ours) == set(ours)
    assert skipped == ({"backbone.conv1.conv.weight"} if variant == "flow" else set())
    assert all(".non_local_block." in k or k.startswith("cls_head.") for k in kept)
    assert any(".non_local_block." in k for k in kept) == (variant == "nl")
    assert len(report.inflated) == 53 - (variant == "flow")  # every conv of a ResNet-50: stem + 16 x 3 + 4 shortcuts


def test_flow_stem_is_skipped_and_reported(resnet50, reference):
    _, report = inflate_zoo("flow", resnet50)
    assert [key for key, _ in report.skipped] == ["backbone.stem.conv.weight"]
    assert "more input channels" in report.skipped[0][1]
    assert "backbone.stem.bn.weight" in report.copied  # the stem's BN is still copied, as upstream does
    assert set(report.unused_2d) == {"conv1.weight", "fc.weight", "fc.bias"}
    assert "backbone.conv1.conv.weight" not in written(reference["flow"])
    assert "skipped backbone.stem.conv.weight" in report.summary()


def test_rgb_report_and_inflated_kernel(resnet50):
    model, report = inflate_zoo("rgb", resnet50)
    assert report.skipped == () and set(report.unused_2d) == {"fc.weight", "fc.bias"}
    # a (3, 1, 1) kernel is the 2D kernel repeated 3 times over time and divided by 3
    weight = model.backbone.layer3[0].conv1.conv.weight
    assert weight.shape[2] == 3
    assert torch.equal(weight[:, :, 1], resnet50["layer3.0.conv1.weight"] / 3)


def test_not_a_resnet50_is_an_error():
    model = SlowOnly(depth=50, num_classes=4)
    with pytest.raises(InflationError, match="torchvision ResNet-50"):
        inflate_imagenet({"foo.weight": torch.zeros(1)}, model)
    with pytest.raises(InflationError, match="cannot inflate"):
        inflate_imagenet({"layer1.0.conv1.weight": torch.zeros(3, 3, 3, 3)}, model)
