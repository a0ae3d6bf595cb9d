"""Where a model runs and how views go through it: the one device resolver and the one chunked forward pass that
``predict``, ``extract``, ``benchmark`` and the evaluation loop share.

Device rule (:func:`resolve_device`): ``None`` or ``"auto"`` is the GPU when torch sees one, else the CPU. A CUDA
device without an index (``"cuda"``, or ``"auto"`` on a GPU machine) is ``cuda:$LOCAL_RANK`` when ``LOCAL_RANK`` is
set (``torchrun`` sets it for each process, so each rank takes its own GPU) and ``cuda:0`` otherwise. An explicit
index (``"cuda:1"``) is used as given. Asking for CUDA without a GPU, for a GPU this machine does not have, or for a
device torch does not know (``"gpu"``) is a :class:`DeviceError` that says what to pass instead.

bf16 rule (:func:`check_amp`): ``amp`` (bf16 autocast) runs on CUDA and on CPUs with native bf16 (``avx512_bf16``,
``amx_bf16``, or Arm's ``bf16``); elsewhere torch emulates bf16 slower than fp32, so it is an
:class:`EmulatedBf16Error` unless ``SLOWONLY_ZOO_ALLOW_EMULATED_BF16=1``.

Chunking rule (:func:`forward_views`): views go through the model
:func:`~slowonly_zoo.models.fuse.views_per_forward` at a time (the whole batch on accelerators, one view on CPU,
which is faster there); the outputs do not depend on it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from . import config
from .errors import DeviceError, EmulatedBf16Error
from .models.fuse import views_per_forward

__all__ = ["DeviceError", "EmulatedBf16Error", "amp_dtype_name", "check_amp", "cpu_has_native_bf16", "forward_views"]
__all__ += ["resolve_device"]

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""``/proc/cpuinfo`` flags (x86 ``flags``, Arm ``Features``) of CPUs that compute in bf16 natively."""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags from ``/proc/cpuinfo`` (empty where there is no such file: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (see :data:`NATIVE_BF16_FLAGS`)."""
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def check_amp(device: torch.device, amp: bool) -> None:
    """The one place that decides whether ``amp`` (bf16 autocast) may run on ``device`` (the module's bf16 rule).

    Raises :class:`EmulatedBf16Error` on a CPU without native bf16, unless ``SLOWONLY_ZOO_ALLOW_EMULATED_BF16=1``.
    """
    if not amp or device.type != "cpu" or cpu_has_native_bf16() or config.allow_emulated_bf16():
        return
    raise EmulatedBf16Error(
        "--amp runs the model in bf16, but this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag), so torch "
        "would emulate it, slower than fp32; run without --amp (fp32 is the upstream setting), on a GPU or a CPU "
        "with native bf16, or set SLOWONLY_ZOO_ALLOW_EMULATED_BF16=1 to run it emulated anyway"
    )


def amp_dtype_name(amp: bool) -> str:
    """The compute dtype a run reports: ``bfloat16`` under ``amp`` (autocast), else ``float32``."""
    return "bfloat16" if amp else "float32"


def _local_rank() -> int:
    raw = os.environ.get("LOCAL_RANK")
    if raw is None or raw.strip() == "":
        return 0
    try:
        return int(raw)
    except ValueError:
        raise DeviceError(f"LOCAL_RANK={raw!r} is not a GPU number; unset it or launch with torchrun") from None


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`, following the device rule of this module's docstring.

    Raises :class:`DeviceError` for an unknown device string and for a CUDA device this machine does not have.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise DeviceError(
            f"unknown device {device!r}; pass 'cpu', 'cuda', 'cuda:N' (the N-th GPU) or 'auto' (a GPU when there "
            "is one)"
        ) from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was asked for but torch sees no CUDA GPU here; use --device cpu")
    if dev.index is None:
        dev = torch.device("cuda", _local_rank())
    count = torch.cuda.device_count()
    if not 0 <= dev.index < count:
        raise DeviceError(
            f"{dev} was asked for but this machine has {count} GPU{'s' if count != 1 else ''} "
            f"(cuda:0 to cuda:{count - 1}); pass one of those, or fewer processes per node to torchrun"
        )
    return dev


def forward_views(
    fn: Callable[[torch.Tensor], torch.Tensor],
    views: torch.Tensor,
    device: torch.device,
    batch_views: int,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    amp: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """``fn`` (a model's forward, or part of it) over ``views`` ``(V, C, T, H, W)``, in inference mode.

    The views go to ``device`` :func:`~slowonly_zoo.models.fuse.views_per_forward` ``(device, batch_views)`` at a
    time (asynchronously from pinned memory), each chunk through ``transform`` (e.g. the device-side normalisation
    of uint8 views) and in channels-last 3D; ``amp`` runs ``fn`` under bf16 autocast; ``on_chunk`` is called with
    the number of views of each chunk once it is done (a progress bar's ``update``). Returns the float32 outputs
    concatenated along the first dimension, on ``device``.
    """
    step = views_per_forward(device, batch_views)
    outs = []
    with torch.inference_mode():
        for start in range(0, views.shape[0], step):
            chunk = views[start : start + step].to(device, non_blocking=True)
            if transform is not None:
                chunk = transform(chunk)
            chunk = chunk.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp else nullcontext():
                out = fn(chunk)
            outs.append(out.float().contiguous())
            if on_chunk is not None:
                on_chunk(int(chunk.shape[0]))
    return outs[0] if len(outs) == 1 else torch.cat(outs)
