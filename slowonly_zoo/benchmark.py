"""Measure a zoo model's throughput (the logic behind ``slowonly-zoo benchmark``), as upstream's
``tools/analysis/benchmark.py`` does, plus an end-to-end figure with decoding and the test pipeline.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InferenceError
from .index import get_model_info
from .inference import inference_protocol, input_pipeline, load_model
from .models.fuse import views_per_forward
from .runtime import forward_views, resolve_device

__all__ = ["benchmark", "synthetic_video"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_video(
    path: str | os.PathLike[str], *, frames: int = 300, width: int = 340, height: int = 256, fps: int = 30
) -> Path:
    """Write a moving-pattern MPEG-4 video (for end-to-end timing when no real video is given)."""
    import av

    path = Path(path)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


#: CPU defaults of :func:`benchmark` (upstream's 200 iterations would take over an hour on a CPU).
CPU_ITERS, CPU_WARMUP, CPU_E2E_ITERS = 2, 1, 0


def benchmark(
    name: str,
    *,
    device: str | torch.device | None = None,
    iters: int | None = None,
    warmup: int | None = None,
    clips: int | None = None,
    crop_size: int | None = None,
    video: str | os.PathLike[str] | None = None,
    e2e_iters: int | None = None,
    fuse_bn: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Throughput of a zoo model, measured as upstream's ``tools/analysis/benchmark.py`` (mmaction2 0.x) does.

    Model only: random weights (no checkpoint), batch 1 video = all test views of one video (30 views of the full
    protocol), ``iters`` iterations of which the first ``warmup`` (5) are not counted; each timed iteration is
    synchronize, copy the views to the device, forward, softmax-and-mean over views, copy the scores back,
    synchronize. Decoding is excluded. The views go through the model as ``predict`` runs them
    (:func:`slowonly_zoo.runtime.forward_views`: all at once on a GPU, one at a time on CPU; the result's
    ``views_per_forward`` says which). ``videos_per_second = (iters - warmup) / timed seconds`` (upstream also adds
    its last iteration's time twice, which lowers its figure by about 1/(iters - warmup); we do not).

    End to end: ``e2e_iters`` runs of decode + test pipeline + forward + averaging on ``video`` (default: a
    synthetic 340x256, 300-frame MPEG-4 clip), as videos/s.

    Defaults: on a GPU upstream's 200 ``iters`` with 5 ``warmup`` and 3 ``e2e_iters``; on a CPU, where one video of
    30 views takes 20-60 s, 2 ``iters`` with 1 warm-up and no end-to-end run (decoding is under 2% of a CPU video's
    time; pass ``e2e_iters``), so about a minute for an R50 8x8 model. ``clips`` / ``crop_size`` shrink the views
    (``clips=N``: N clips, one centre crop) to measure something else than upstream's setting; the result says so.
    """
    import tempfile

    entry = get_model_info(name)
    dev = resolve_device(device)
    on_gpu = dev.type == "cuda"
    if iters is None:
        iters = 200 if on_gpu else CPU_ITERS
    if warmup is None:
        warmup = 5 if on_gpu else CPU_WARMUP
    e2e_note = None
    if e2e_iters is None:
        e2e_iters = 3 if on_gpu else CPU_E2E_ITERS
        if e2e_iters == 0:
            e2e_note = "not run by default on a CPU, where the forward pass dominates; pass --e2e-iters N"
    if warmup < 0 or iters <= warmup:
        raise InferenceError(f"--iters ({iters}) must be larger than --warmup ({warmup})")
    protocol = inference_protocol(entry, clips)
    if crop_size is not None:
        protocol = dataclasses.replace(protocol, crop_size=int(crop_size), resize_short=int(crop_size))
    model, entry = load_model(name, device=dev, pretrained=False, optimize=False)
    if fuse_bn:
        from .models.fuse import fuse_batchnorm

        model = fuse_batchnorm(model, inplace=True)
    arch = entry.architecture
    assert arch is not None  # load_model refuses ensembles, the only entries without one
    c = arch.in_channels
    shape = (protocol.num_views, c, protocol.clip_len, protocol.crop_size, protocol.crop_size)
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(shape, generator=generator)
    if dev.type == "cuda":
        views = views.pin_memory()
    timed = 0.0
    with torch.inference_mode():
        for i in range(iters):
            _sync(dev)
            t0 = time.perf_counter()
            logits = forward_views(model, views, dev, protocol.num_views)
            scores = torch.softmax(logits, dim=-1).mean(dim=0).cpu().numpy()
            _sync(dev)
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                timed += elapsed
            if progress:
                progress(f"iteration {i + 1}/{iters}: {elapsed:.3f} s{' (warm-up)' if i < warmup else ''}")
    assert scores.shape == (entry.num_classes,)
    upstream_setting = clips is None and crop_size is None
    result: dict[str, Any] = {
        "model": entry.name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "weights": "random (as upstream's benchmark)",
        "fuse_bn": fuse_bn,
        "views_per_video": protocol.num_views,
        "views_per_forward": views_per_forward(dev, protocol.num_views),
        "input_per_view": list(shape[1:]),
        "iters": iters,
        "warmup": warmup,
        "upstream_setting": upstream_setting,
        "model_videos_per_second": (iters - warmup) / timed,
        "model_seconds_per_video": timed / (iters - warmup),
        "reported_videos_per_second": next((r.inference_time for r in entry.results if r.inference_time), None),
    }
    if e2e_note is not None:
        result["end_to_end"] = None
        result["end_to_end_note"] = e2e_note
    if e2e_iters > 0:
        with tempfile.TemporaryDirectory(prefix="slowonly-bench-") as tmp:
            if video is None:
                if arch.modality == "flow":
                    result["end_to_end"] = None
                    result["end_to_end_note"] = "flow models need frame folders; pass --video FOLDER to time them"
                    return result
                source = synthetic_video(Path(tmp) / "synthetic.mp4")
            else:
                source = Path(video)
            pipe = input_pipeline(protocol, entry, source)
            t_all = time.perf_counter()
            t_data = 0.0
            with torch.inference_mode():
                for i in range(e2e_iters):
                    t0 = time.perf_counter()
                    v = pipe(source)
                    t_data += time.perf_counter() - t0
                    torch.softmax(forward_views(model, v, dev, protocol.num_views), dim=-1).mean(dim=0).cpu()
                    _sync(dev)
                    if progress:
                        progress(f"end-to-end {i + 1}/{e2e_iters}")
            total = time.perf_counter() - t_all
            result["end_to_end"] = {
                "video": str(video) if video is not None else "synthetic 340x256, 300 frames, MPEG-4",
                "iters": e2e_iters,
                "videos_per_second": e2e_iters / total,
                "data_seconds_per_video": t_data / e2e_iters,
            }
    return result


def _cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
