"""One training step: ``slowonly_zoo.training.train_step`` + ``build_sgd`` against mmaction2 0.24.1 + mmcv 1.7.0.

Reference, in the 0.x subprocess: the ``Recognizer3D`` built from the 0.x config shipped in the mmaction2 0.24.1
wheel (``backbone.pretrained=None``, head dropout 0), ``model.train_step`` (forward, ``CrossEntropyLoss``,
``top_k_accuracy``), then mmcv's ``OptimizerHook(grad_clip=dict(max_norm, norm_type=2)).after_train_iter``
(``zero_grad``, backward, ``clip_grad_norm_``, ``optimizer.step()``) on the optimizer from
``mmcv.runner.build_optimizer(model, cfg.optimizer)``. Both sides start from the same random weights (every BN
randomised too, so no residual branch is the identity) moved between the layouts by ``slowonly_zoo.weights.convert``,
and take two steps on the same two small batches (the second step exercises the momentum buffers). Compared: loss,
grad norm and accuracies of each step, and every parameter and BN buffer after the second step, to 1e-5 relative;
with clipping active (``max_norm`` below the norm) and inactive.
"""

from __future__ import annotations

import pytest
import torch
from reference0x import CONFIGS_0X, run_reference_0x

from slowonly_zoo.models import SlowOnly
from slowonly_zoo.training import StepResult, build_sgd, clip_grad_norm, train_step
from slowonly_zoo.weights.convert import upstream_to_zoo, zoo_to_upstream

VARIANTS = {
    # name: (0.x config, SlowOnly kwargs)
    "r50": ("slowonly_r50_8x8x1_256e_kinetics400_rgb", dict(in_channels=3, non_local=False)),
    "nl": ("slowonly_nl_embedded_gaussian_r50_8x8x1_150e_kinetics400_rgb", dict(in_channels=3, non_local=True)),
    "flow": ("slowonly_r50_8x8x1_256e_kinetics400_flow", dict(in_channels=2, non_local=False)),
}
CLIPS = {"clip_active": (0.05, 0.1), "clip_inactive": (1e6, 1e-3)}
"""(max_norm, lr) per case: max_norm far below / far above the gradient norm of these batches (asserted below);
the unclipped case takes a smaller lr, so that its first step (gradient norm ~100) does not throw the second step
into a chaotic regime where float32 rounding alone decides the digits compared."""
BATCH, FRAMES, SIZE, NUM_CLASSES = 2, 4, 64, 400
STEPS = 2
RTOL = 1e-5

_REFERENCE_STEPS = """
from mmcv import Config
from mmcv.runner import OptimizerHook, build_optimizer
from mmaction.models import build_model


class LogBuffer:
    def __init__(self):
        self.output = {}

    def update(self, values, count=1):
        self.output.update(values)


class RunnerStub:
    # what OptimizerHook.after_train_iter reads from an EpochBasedRunner
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.log_buffer = LogBuffer()
        self.outputs = None


for variant, config in inputs["configs"].items():
    cfg = Config.fromfile(config)
    cfg.model.backbone.pretrained = None
    cfg.model.cls_head.dropout_ratio = 0
    for case, (max_norm, lr) in inputs["clips"].items():
        cfg.optimizer.lr = lr
        model = build_model(cfg.model)
        model.load_state_dict(inputs["weights"][variant], strict=True)
        model.train()
        optimizer = build_optimizer(model, cfg.optimizer)
        hook = OptimizerHook(grad_clip=dict(max_norm=max_norm, norm_type=2))
        runner = RunnerStub(model, optimizer)
        logs = []
        for imgs, labels in inputs["batches"][variant]:
            data = dict(imgs=imgs[:, None], label=labels[:, None])  # (N, num_clips=1, C, T, H, W), (N, 1)
            runner.outputs = model.train_step(data, optimizer)
            hook.after_train_iter(runner)
            log_vars = runner.outputs["log_vars"]
            logs.append(dict(
                loss=float(runner.outputs["loss"]),
                grad_norm=runner.log_buffer.output["grad_norm"],
                top1_acc=float(log_vars["top1_acc"]),
                top5_acc=float(log_vars["top5_acc"]),
            ))
        outputs[(variant, case)] = dict(
            logs=logs,
            optimizer_type=type(optimizer).__name__,
            groups=len(optimizer.param_groups),
            group=dict((k, v) for k, v in optimizer.param_groups[0].items() if k != "params"),
            state={k: v.detach().clone() for k, v in model.state_dict().items()},
        )
"""


def randomised_weights(model: SlowOnly, seed: int) -> dict[str, torch.Tensor]:
    """Random weights of a well-conditioned net: nothing zero-initialised, nothing saturated.

    Convs and fc He-normal; every BN gets random affine parameters and running statistics, with the last BN of each
    bottleneck (``conv3.bn``, zero in upstream's init) and of each non-local output small, so the residual stream
    does not blow up; the non-local embeddings get upstream's std 0.01, so their softmax is not saturated. (With
    He-normal everywhere the gradient norm reaches 1e4 and float32 noise alone moves single gradients by tens of
    percent between two correct implementations.)
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.randn(value.shape, generator=gen) * 0.1
        elif value.dim() == 1:  # BN weight
            low, high = (0.1, 0.3) if key.endswith(("conv3.bn.weight", "conv_out.bn.weight")) else (0.5, 1.5)
            state[key] = low + (high - low) * torch.rand(value.shape, generator=gen)
        elif ".non_local." in key:
            state[key] = torch.randn(value.shape, generator=gen) * 0.01
        else:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return state


def zoo_model(variant: str) -> SlowOnly:
    return SlowOnly(depth=50, num_classes=NUM_CLASSES, dropout=0.0, **VARIANTS[variant][1])


@pytest.fixture(scope="module")
def setup():
    weights, batches = {}, {}
    for k, variant in enumerate(VARIANTS):
        weights[variant] = randomised_weights(zoo_model(variant), seed=k)
        channels = VARIANTS[variant][1]["in_channels"]
        gen = torch.Generator().manual_seed(100 + k)
        batches[variant] = [
            (
                torch.randn(BATCH, channels, FRAMES, SIZE, SIZE, generator=gen),
                torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen),
            )
            for _ in range(STEPS)
        ]
    return weights, batches


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    weights, batches = setup
    inputs = dict(
        configs={variant: str(CONFIGS_0X / f"{config}.py") for variant, (config, _) in VARIANTS.items()},
        clips=CLIPS,
        weights={variant: zoo_to_upstream(state) for variant, state in weights.items()},
        batches=batches,
    )
    return run_reference_0x(_REFERENCE_STEPS, tmp_path_factory.mktemp("step0x"), inputs)


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs| (0 for two zero tensors)."""
    scale = theirs.abs().max().item()
    diff = (ours.double() - theirs.double()).abs().max().item()
    return diff / scale if scale else diff


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CLIPS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_train_step_equals_mmaction2_0x(setup, reference, variant, case):
    weights, batches = setup
    ref = reference[(variant, case)]
    assert ref["optimizer_type"] == "SGD" and ref["groups"] == 1  # mmcv's default constructor: one group
    assert (ref["group"]["momentum"], ref["group"]["weight_decay"]) == (0.9, 1e-4)

    model = zoo_model(variant)
    model.load_state_dict(weights[variant], strict=True)
    model.train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    max_norm, lr = CLIPS[case]
    assert ref["group"]["lr"] == lr
    optimizer = build_sgd(model, lr, momentum=ref["group"]["momentum"], weight_decay=ref["group"]["weight_decay"])
    for step, (clips, labels) in enumerate(batches[variant]):
        result = train_step(model, optimizer, clips, labels, max_norm=max_norm)
        theirs = ref["logs"][step]
        assert isinstance(result, StepResult)
        assert result.loss == pytest.approx(theirs["loss"], rel=RTOL), step
        assert result.grad_norm == pytest.approx(theirs["grad_norm"], rel=RTOL), step
        assert (result.top1_acc, result.top5_acc) == (theirs["top1_acc"], theirs["top5_acc"]), step
        if case == "clip_active":
            assert result.grad_norm > 10 * max_norm  # clipping really scaled the gradients
        else:
            assert result.grad_norm < max_norm

    after_ref = upstream_to_zoo(ref["state"])
    after = model.state_dict()
    assert after.keys() == after_ref.keys()
    worst_weight, update_err, update_norm = 0.0, 0.0, 0.0
    for key, value in after.items():
        if not value.is_floating_point():
            assert torch.equal(value, after_ref[key]), key  # num_batches_tracked
            continue
        worst_weight = max(worst_weight, rel_err(value, after_ref[key]))
        update_ref = (after_ref[key] - start[key]).double()
        update_err += ((value - start[key]).double() - update_ref).square().sum().item()
        update_norm += update_ref.square().sum().item()
    assert worst_weight < RTOL, worst_weight
    # the change itself matches too, not only the (much larger) weights: global L2 of the update difference
    assert (update_err / update_norm) ** 0.5 < RTOL, (update_err / update_norm) ** 0.5


@pytest.mark.slow
def test_updates_are_visible_at_this_tolerance(setup, reference):
    """The weights really move by more than the tolerance, so the weight comparison can fail."""
    weights, _ = setup
    ref = upstream_to_zoo(reference[("r50", "clip_inactive")]["state"])
    moved = [rel_err(ref[k], weights["r50"][k]) for k in ref if ref[k].is_floating_point() and k.endswith("weight")]
    assert max(moved) > 100 * RTOL


def test_foreach_sgd_is_bitwise_the_loop():
    """build_sgd's multi-tensor update equals torch's per-parameter loop exactly (3 steps, momentum, wd)."""
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 3)) for _ in "ab"]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [build_sgd(nets[0], 0.1, foreach=True), build_sgd(nets[1], 0.1, foreach=False)]
    x, y = torch.randn(8, 7), torch.randint(0, 3, (8,))
    for _ in range(3):
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            clip_grad_norm(net.parameters(), 0.5)
            opt.step()
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_clip_grad_norm_reports_the_norm_before_clipping():
    p = torch.nn.Parameter(torch.zeros(3))
    q = torch.nn.Parameter(torch.zeros(2))
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    p.grad = torch.tensor([3.0, 0.0, 4.0])
    assert clip_grad_norm([p, q, frozen], None) == pytest.approx(5.0)  # q has no grad, frozen is skipped
    assert torch.equal(p.grad, torch.tensor([3.0, 0.0, 4.0]))
    assert clip_grad_norm([p], 1.0) == pytest.approx(5.0)
    assert p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
