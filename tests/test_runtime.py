"""``slowonly_zoo.runtime``: the one device rule and the one chunked forward over views."""

from __future__ import annotations

import pytest
import torch

from slowonly_zoo.errors import DeviceError, SlowOnlyZooError
from slowonly_zoo.runtime import forward_views, resolve_device


def test_auto_and_none_pick_the_gpu_only_when_there_is_one():
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device(None) == expected
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "nvidia:1"])
def test_unknown_device_names_are_refused_with_what_to_pass(bad):
    with pytest.raises(DeviceError, match=r"unknown device .*'cpu', 'cuda', 'cuda:N'"):
        resolve_device(bad)
    assert issubclass(DeviceError, SlowOnlyZooError) and issubclass(DeviceError, ValueError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("asked", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_to_use_the_cpu(asked):
    with pytest.raises(DeviceError, match="no CUDA GPU here; use --device cpu"):
        resolve_device(asked)


def test_bare_cuda_is_this_ranks_local_gpu(monkeypatch):
    """torchrun sets LOCAL_RANK per process; a bare 'cuda' (or 'auto') takes that GPU, an explicit index stays."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("auto") == torch.device("cuda", 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"cuda:7 was asked for but this machine has 4 GPUs \(cuda:0 to cuda:3\)"):
        resolve_device("cuda:7")
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(DeviceError, match="LOCAL_RANK='x'"):
        resolve_device("cuda")


def test_forward_views_chunks_transform_and_matches_one_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5)
    ).eval()
    views = torch.randint(0, 256, (7, 3, 2, 8, 8), dtype=torch.uint8)
    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        assert x.is_contiguous(memory_format=torch.channels_last_3d) and x.dtype == torch.float32
        return model(x)

    def transform(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255

    out = forward_views(fn, views, torch.device("cpu"), 4, transform=transform)
    assert seen == [1] * 7  # one view per pass on CPU, whatever batch_views says
    with torch.inference_mode():
        expected = torch.cat([model(transform(v[None])) for v in views])
    assert out.dtype == torch.float32 and out.shape == (7, 5) and out.is_contiguous()
    assert torch.equal(out, expected)


def test_the_command_line_prints_device_errors_as_one_sentence(shared_videos, capsys):
    from slowonly_zoo import cli

    video = str(shared_videos / "archery.avi")
    assert cli.main(["predict", "slowonly_r50_8x8x1_k400", video, "--device", "gpu"]) == 1
    assert "unknown device 'gpu'; pass 'cpu', 'cuda'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["benchmark", "slowonly_r50_8x8x1_k400", "--device", "cuda"]) == 1
        assert "no CUDA GPU here; use --device cpu" in capsys.readouterr().err
