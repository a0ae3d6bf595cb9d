"""Issue 14 item 6: the CUDA path, measured. Run through ``benchmarks/gpu.sh`` (which runs the CUDA tests first).

Sections, each printed with the machine line (GPU, CPU flags, torch, date):

* ``forward``: 30 views of 3x8x256x256 (the 8x8x1 test protocol), mmaction2 1.2.0's recognizer (fp32, all 30
  views at once, as its test loop runs them) against slowonly-zoo's inference form (BatchNorm folded,
  channels-last, frames folded into the batch for the frame-wise convs, ``cudnn.benchmark``) in fp32 and in bf16
  autocast, and the channels-last 3D form without the fold; max |logit diff| vs mmaction2, the bf16 effect on the
  probabilities (max |diff|, same top-1) and the peak GPU memory of each (``torch.cuda.max_memory_allocated``,
  the README's gpu_mem column).
* ``e2e``: videos/s through the verify harness (``evaluate``: DataLoader workers, uint8 views normalised on the
  GPU, 60 views per forward) on real clips (``../shared/videos``, or generated ones where that folder is missing),
  fp32 and bf16, and the estimate of a full Kinetics-400 validation run (19796 videos x 30 views) from it.

Target (issue 14): at least 10x the README's 2.3 videos/s for 8x8x1 at 30 views.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import slowonly_zoo  # noqa: E402
from slowonly_zoo.models.fuse import optimize_for_inference  # noqa: E402
from slowonly_zoo.runtime import forward_views  # noqa: E402

MODEL = "slowonly_r50_8x8x1_k400"
K400_VAL_VIDEOS = 19796
README_VIDEOS_PER_SECOND = 2.3
"""The README's reported inference speed of the 8x8x1 R50 at 30 views (the target is 10x this)."""


def timed_cuda(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call of ``fn`` (after one warm-up call), synchronised with the GPU."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """Peak GPU memory allocated while ``fn`` runs, over what was allocated before, in MB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def bench_forward(repeats: int, views: int) -> dict:
    from reference import build_mmaction_recognizer, mmaction_logits, randomize_

    from slowonly_zoo.weights.convert import load_state_dict_strict, upstream_to_zoo

    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    reference = randomize_(build_mmaction_recognizer(), 0).eval()
    zoo = slowonly_zoo.create_model(MODEL).eval()
    load_state_dict_strict(zoo, upstream_to_zoo(reference.state_dict()))
    reference.to(dev)
    folded = optimize_for_inference(zoo).to(dev)
    cl3d = optimize_for_inference(zoo, time_as_batch=False).to(dev)
    x = torch.randn(views, 3, 8, 256, 256, generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.inference_mode():
        _, ref_logits = mmaction_logits(reference, x)
        impls: dict[str, Callable[[], torch.Tensor]] = {
            "mmaction2 fp32": lambda: reference.cls_head(reference.backbone(x)),
            "slowonly-zoo fp32": lambda: forward_views(folded, x, dev, views),
            "slowonly-zoo fp32, no time fold": lambda: forward_views(cl3d, x, dev, views),
            "slowonly-zoo bf16 autocast": lambda: forward_views(folded, x, dev, views, amp=True),
        }
        outputs = {k: fn().float() for k, fn in impls.items()}
        results = {}
        base = None
        print(f"\nforward, {views} views of 3x8x256x256, {MODEL} (random weights), {repeats} repeats")
        for name, fn in impls.items():
            times = timed_cuda(fn, repeats)
            memory = peak_memory_mb(fn)
            best = min(times)
            base = base or best
            diff = (outputs[name] - ref_logits).abs().max().item()
            prob_diff = (outputs[name].softmax(-1) - ref_logits.softmax(-1)).abs().max().item()
            same_top1 = bool(torch.equal(outputs[name].argmax(-1), ref_logits.argmax(-1)))
            results[name] = dict(
                seconds=times,
                views_per_second=views / best,
                ratio=base / best,
                peak_memory_mb=memory,
                max_logit_diff=diff,
                max_prob_diff=prob_diff,
                same_top1=same_top1,
            )
            print(
                f"  {name:34s} min {best * 1000:8.1f} ms  {views / best:7.1f} views/s  x{base / best:5.2f}  "
                f"peak {memory:7.0f} MB  max|logit diff| {diff:.2e}  max|prob diff| {prob_diff:.2e}  "
                f"same top-1 {same_top1}"
            )
    return results


def _clips(folder: Path, count: int) -> list[Path]:
    shared = REPO.parent / "shared" / "videos"
    found = sorted(p for p in shared.glob("*") if p.suffix in (".mp4", ".avi")) if shared.is_dir() else []
    if found:
        return [found[i % len(found)] for i in range(count)]
    import av
    import numpy as np

    print(f"  ({shared} is missing here: generating {count} synthetic 10 s 340x256 clips with PyAV)")
    clips = []
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
            base = rng.integers(0, 255, (256, 340, 3), dtype=np.uint8)
            for f in range(300):
                frame = av.VideoFrame.from_ndarray(np.roll(base, 3 * f, axis=1), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        clips.append(path)
    return clips


def bench_e2e(videos: int, workers: int) -> dict:
    import functools

    from slowonly_zoo.data import TestDataset, normalize_views
    from slowonly_zoo.evaluation.runner import evaluate

    entry = slowonly_zoo.get_model_info(MODEL)
    assert entry.protocol is not None
    model = optimize_for_inference(slowonly_zoo.create_model(MODEL))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = _clips(Path(tmp), videos)
        data_root = Path(tmp) / "data"
        data_root.mkdir()
        for i, clip in enumerate(clips):  # one name per list line, so the same clip may appear several times
            (data_root / f"v{i:04d}{clip.suffix}").symlink_to(clip.resolve())
        ann = Path(tmp) / "list.txt"
        ann.write_text("".join(f"v{i:04d}{c.suffix} 0\n" for i, c in enumerate(clips)))
        print(
            f"\nend to end, the verify harness on {len(clips)} clips, {entry.protocol.num_views} views each, "
            f"uint8 views normalised on the GPU, {workers} DataLoader workers"
        )
        for amp in (False, True):
            dataset = TestDataset(entry, ann, data_root, source_format="video", normalize=False)
            transform = functools.partial(normalize_views, protocol=entry.protocol)
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            result = evaluate(
                model,
                dataset,
                out_dir=Path(tmp) / f"run-{amp}",
                device="cuda",
                batch_views=60,
                num_workers=workers,
                amp=amp,
                progress=False,
                transform=transform,
            )
            seconds = time.perf_counter() - t0
            rate = result.num_evaluated / seconds
            estimate_h = K400_VAL_VIDEOS / rate / 3600
            name = "bf16 autocast" if amp else "fp32"
            results[name] = dict(
                videos=result.num_evaluated,
                seconds=seconds,
                videos_per_second=rate,
                x_readme=rate / README_VIDEOS_PER_SECOND,
                k400_val_hours=estimate_h,
                peak_memory_mb=torch.cuda.max_memory_allocated() / 2**20,
            )
            print(
                f"  {name:14s} {rate:7.2f} videos/s ({rate / README_VIDEOS_PER_SECOND:5.1f}x the README's 2.3; "
                f"target 10x)  K400 val ({K400_VAL_VIDEOS} videos x 30 views): {estimate_h:5.2f} h  "
                f"peak {results[name]['peak_memory_mb']:.0f} MB"
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("forward", "e2e"), default=["forward", "e2e"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--views", type=int, default=30)
    parser.add_argument("--videos", type=int, default=64, help="clips for the e2e section")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for the e2e section")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: benchmarks/gpu.py measures the CUDA path only")
        return 2
    from run import machine

    print(f"# slowonly-zoo GPU benchmarks\n# {machine()}")
    results: dict = {"machine": machine()}
    if "forward" in args.only:
        results["forward"] = bench_forward(args.repeats, args.views)
    if "e2e" in args.only:
        results["e2e"] = bench_e2e(args.videos, args.workers)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
