"""Every fast inference path gives the plain module's logits: frames folded into the batch (Conv2dOverTime), the
channels-last and contiguous forms, several views per forward; plus the bf16 rule and the compile cache place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from reference import randomize_

from slowonly_zoo import runtime
from slowonly_zoo.errors import DeviceError, EmulatedBf16Error
from slowonly_zoo.factory import build_architecture
from slowonly_zoo.index import get_model_info
from slowonly_zoo.models.fuse import Conv2dOverTime, MaxPool2dOverTime, fuse_batchnorm, optimize_for_inference

VARIANTS = {
    "r50": ("slowonly_r50_4x16x1_k400", 4),
    "r101": ("slowonly_r101_8x8x1_k400", 2),
    "nl": ("slowonly_r50_nl_4x16x1_k400", 4),
    "flow": ("slowonly_r50_4x16x1_k400_flow", 4),
    "no_pool1": ("slowonly_r50_8x4x1_sthv1", 8),
}


def _relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_inference_path_gives_the_plain_logits(variant):
    name, frames = VARIANTS[variant]
    entry = get_model_info(name)
    model = randomize_(build_architecture(entry), 21).eval()
    x = torch.randn(2, entry.architecture.in_channels, frames, 48, 48, generator=torch.Generator().manual_seed(1))
    plain_keys = {k: v.shape for k, v in fuse_batchnorm(model).state_dict().items()}
    folded = optimize_for_inference(model)
    assert any(isinstance(m, Conv2dOverTime) for m in folded.modules())
    assert any(isinstance(m, MaxPool2dOverTime) for m in folded.modules()) == entry.architecture.with_pool1
    temporal = [m for m in folded.modules() if isinstance(m, torch.nn.Conv3d)]
    assert temporal and all(m.kernel_size[0] == 3 for m in temporal), "only the (3, 1, 1) convs stay 3D"
    assert {k: v.shape for k, v in folded.state_dict().items()} == plain_keys, "same state dict as the fused form"
    contiguous = optimize_for_inference(model, channels_last=False)
    assert not any(isinstance(m, Conv2dOverTime) for m in contiguous.modules()), "no fold where it would copy"
    with torch.inference_mode():
        ref = model(x)
        assert ref.std() > 0.05
        assert _relative(contiguous(x), ref) <= 1e-4
        # as forward_views runs it: channels-last views, one per forward on CPU, and two at once
        one_at_a_time = runtime.forward_views(folded, x, torch.device("cpu"), 2)
        assert _relative(one_at_a_time, ref) <= 1e-4
        assert _relative(folded(x.contiguous(memory_format=torch.channels_last_3d)), ref) <= 1e-4
        # a contiguous input to the channels-last form still works (the first conv converts it)
        assert _relative(folded(x), ref) <= 1e-4


def test_folded_form_copies_no_activation_in_channels_last():
    """In channels-last 3D, (N, C, T, H, W) and (N*T, C, H, W) channels-last 2D are the same memory."""
    conv = torch.nn.Conv3d(8, 16, (1, 3, 3), padding=(0, 1, 1)).to(memory_format=torch.channels_last_3d)
    folded = Conv2dOverTime(conv)
    x = torch.randn(2, 8, 4, 10, 12).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        out = folded(x)
        ref = conv(x)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert _relative(out, ref) <= 1e-5
    assert folded.weight is conv.weight, "the weights are shared, not copied"
    with pytest.raises(ValueError, match="temporal"):
        Conv2dOverTime(torch.nn.Conv3d(8, 8, (3, 1, 1), padding=(1, 0, 0)))


def test_folded_form_trains_like_the_conv3d():
    """The folded module is ordinary autograd: its weight gradient equals the Conv3d's."""
    conv = torch.nn.Conv3d(4, 6, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    folded = Conv2dOverTime(conv)
    x = torch.randn(1, 4, 3, 9, 9)
    grad_ref = torch.autograd.grad(conv(x).square().sum(), conv.weight)[0]
    grad = torch.autograd.grad(folded(x).square().sum(), folded.weight)[0]
    assert torch.allclose(grad, grad_ref, rtol=1e-4, atol=1e-5)


def _conv3d_calls(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, int, int]]:
    """The kernel sizes of the Conv3d modules that ran as Conv3d in ``model(x)``."""
    calls: list[tuple[int, int, int]] = []
    hooks = [
        m.register_forward_hook(lambda m, *_: calls.append(m.kernel_size))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv3d)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


@pytest.mark.parametrize("variant", ["r50", "no_pool1"])
def test_plain_module_runs_frame_wise_ops_as_2d_in_eval_only(variant):
    """The plain ``create_model()`` module in eval mode on CPU: channels-last activations and every frame-wise conv
    as its 2D form, with contiguous weights and the same state dict; in training mode every conv is a Conv3d."""
    name, frames = VARIANTS[variant]
    entry = get_model_info(name)
    model = randomize_(build_architecture(entry), 5)
    before = {k: (v.shape, v.data_ptr()) for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, frames, 32, 32, generator=torch.Generator().manual_seed(3))
    every = [m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert sorted(_conv3d_calls(model.train(), x)) == sorted(every)
    assert _conv3d_calls(model.eval(), x) == [k for k in every if k[0] == 3], "only the temporal convs stay 3D"
    assert {k: (v.shape, v.data_ptr()) for k, v in model.state_dict().items()} == before
    assert all(p.is_contiguous() for p in model.parameters()), "weights keep their default layout"
    with torch.no_grad():
        features = model.backbone(x)
    assert features.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [((1, 3, 3), (1, 1, 1), (0, 1, 1)), ((1, 1, 1), (1, 2, 2), (0, 0, 0))]
)
def test_conv_bn_in_eval_gives_the_same_numbers_in_2d(kernel, stride, padding):
    """ConvBN3d's 2D form (eval, channels-last input) against its Conv3d form (contiguous input), BN and ReLU
    included; and the stem's max-pool likewise."""
    from slowonly_zoo.models.layers import ConvBN3d
    from slowonly_zoo.models.resnet3d import Stem

    generator = torch.Generator().manual_seed(4)
    block = ConvBN3d(8, 16, kernel, stride, padding)
    randomize_(block, 6)
    block.eval()
    x = torch.randn(2, 8, 3, 11, 13, generator=generator)
    with torch.no_grad():
        ref = block(x)
        out = block(x.contiguous(memory_format=torch.channels_last_3d))
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert ref.std() > 0.1 and _relative(out, ref) <= 1e-5
    stem = randomize_(Stem(3, with_pool=True), 7).eval()
    image = torch.randn(1, 3, 2, 21, 19, generator=generator)
    with torch.no_grad():
        pooled = stem(image.contiguous(memory_format=torch.channels_last_3d))
        pooled_ref = stem(image)
    assert pooled.shape == pooled_ref.shape == (1, 64, 2, 6, 5)
    assert torch.equal(pooled, pooled_ref)


def test_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch):
    monkeypatch.delenv("SLOWONLY_ZOO_ALLOW_EMULATED_BF16", raising=False)
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # this project's AVX2 EPYC
    with pytest.raises(EmulatedBf16Error, match="no native bf16.*SLOWONLY_ZOO_ALLOW_EMULATED_BF16=1") as caught:
        runtime.check_amp(cpu, True)
    assert isinstance(caught.value, DeviceError)
    runtime.check_amp(cpu, False)  # fp32 always runs
    runtime.check_amp(torch.device("cuda"), True)  # GPUs run bf16 natively (no GPU needed to ask)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    runtime.check_amp(cpu, True)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "amx_tile", "amx_bf16"}))
    runtime.check_amp(cpu, True)
    assert runtime.amp_dtype_name(True) == "bfloat16" and runtime.amp_dtype_name(False) == "float32"


def test_forced_emulated_bf16_runs_and_stays_close_to_fp32(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv("SLOWONLY_ZOO_ALLOW_EMULATED_BF16", "1")
    runtime.check_amp(torch.device("cpu"), True)
    entry = get_model_info("slowonly_r50_4x16x1_k400")
    model = optimize_for_inference(randomize_(build_architecture(entry), 3).eval())
    x = torch.randn(1, 3, 2, 32, 32, generator=torch.Generator().manual_seed(2))
    fp32 = runtime.forward_views(model, x, torch.device("cpu"), 1)
    bf16 = runtime.forward_views(model, x, torch.device("cpu"), 1, amp=True)
    assert bf16.dtype == torch.float32
    assert _relative(bf16, fp32) <= 0.1  # bf16 keeps ~3 significant digits


def test_predict_refuses_emulated_bf16_before_loading_weights(monkeypatch):
    from slowonly_zoo.inference import Predictor

    monkeypatch.delenv("SLOWONLY_ZOO_ALLOW_EMULATED_BF16", raising=False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.raises(EmulatedBf16Error):
        Predictor("slowonly_r50_4x16x1_k400", device="cpu", amp=True)  # no weights are fetched: it fails first


_COMPILE_ONCE = textwrap.dedent(
    """
    import json, sys, time
    import torch
    from torch._dynamo.utils import counters
    from slowonly_zoo.models.fuse import compile_for_inference, use_compile_cache

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 8, (1, 3, 3), padding=(0, 1, 1)), torch.nn.ReLU()).eval()
    compiled = compile_for_inference(model)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = compiled(torch.randn(1, 3, 2, 8, 8))
    print(json.dumps({"seconds": time.perf_counter() - t0, "compiled": compiled._use_compiled,
                      "folder": str(use_compile_cache()), "hits": counters["inductor"]["fxgraph_cache_hit"]}))
    """
)


@pytest.mark.slow
def test_compile_cache_is_kept_under_the_zoo_home_and_reused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["SLOWONLY_ZOO_HOME"] = str(tmp_path / "home")
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _COMPILE_ONCE], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    folder = tmp_path / "home" / "compile-cache"
    assert runs[0]["folder"] == str(folder) == runs[1]["folder"]
    assert runs[0]["compiled"] and runs[1]["compiled"], "compilation fell back to eager"
    assert any(p.is_file() for p in folder.rglob("*")), "the first run left its artefacts in the folder"
    assert runs[0]["hits"] == 0 and runs[1]["hits"] >= 1, runs


def test_one_ahead_decodes_the_next_item_while_the_caller_works():
    import threading

    from slowonly_zoo.data.threads import one_ahead

    started: list[int] = []
    second_started = threading.Event()

    def decode(i: int) -> int:
        started.append(i)
        if i == 1:
            second_started.set()
        if i == 2:
            raise ValueError("unreadable item 2")
        return i * 10

    results = []
    for i, result in one_ahead(decode, [0, 1, 2]):
        if i == 0:
            assert second_started.wait(10), "item 1 was not decoding while item 0 was being used"
        try:
            results.append(result())
        except ValueError as err:
            results.append(str(err))
    assert results == [0, 10, "unreadable item 2"]
    assert started == [0, 1, 2]
