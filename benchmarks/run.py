"""slowonly-zoo against mmaction2 (from PyPI), side by side in one process, on the same inputs.

    python benchmarks/run.py                 # everything (about 20 minutes on 2 CPU cores)
    python benchmarks/run.py --only forward preprocess --repeats 5
    python benchmarks/run.py --quick         # smaller forward shapes, one repeat: a smoke run

Sections (issue 6):
  peak        the machine's measured fp32 / bf16 matmul throughput (GFLOP/s), the ceiling for the forward pass
  forward     model forward: a batch of 30 views of the 8x8x1 K400 protocol (3x8x256x256) and batch 1 at
              8x224x224; mmaction2 fp32 vs slowonly-zoo fp32 (BN folded, inference mode) and bf16
  preprocess  the test pipeline per video (decode + sample + resize + crop + normalise) on ../shared/videos
  e2e         whole evaluation, videos/s: mmaction2's per-video test loop vs slowonly-zoo's verify harness
  load        create_model(pretrained=True) from a warm cache (safetensors) vs torch.load of the upstream .pth
  memory      peak RSS of each forward / pipeline (each in a fresh subprocess, so peaks do not mix)

Timings are min and median over --repeats runs after one warm-up, alternating the implementations so drift
hits both alike. Ratios are mmaction2 time / slowonly-zoo time (> 1: slowonly-zoo is faster). The mmaction2
reference needs the test extras: pip install -e '.[test]' && pip install --no-deps -r tests/reference-requirements.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
VIDEOS = REPO.parent / "shared" / "videos"

import slowonly_zoo  # noqa: E402
from slowonly_zoo.models.fuse import FixedBatch, optimize_for_inference  # noqa: E402

SECTIONS = ("peak", "forward", "preprocess", "e2e", "load", "memory")


# -- timing helpers ----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def side_by_side(impls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run each implementation once to warm up, then ``repeats`` rounds, alternating implementations."""
    for fn in impls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            times[name].append(timed(fn))
    return times


def summary(times: list[float]) -> str:
    return f"min {min(times):8.3f} s  median {statistics.median(times):8.3f} s"


def print_ratios(title: str, times: dict[str, list[float]], baseline: str, unit_count: float = 1.0,
                 unit: str = "") -> dict[str, float]:
    print(f"\n{title}")
    ratios = {}
    for name, values in times.items():
        ratio = min(times[baseline]) / min(values)
        ratios[name] = ratio
        rate = f"  {unit_count / min(values):7.2f} {unit}" if unit else ""
        print(f"  {name:34s} {summary(values)}{rate}  x{ratio:5.2f} vs {baseline}")
    return ratios


# -- models ------------------------------------------------------------------------------------------------------


def reference_and_zoo(name: str, seed: int = 0):
    """mmaction2's recognizer with randomised weights, and slowonly-zoo's model loaded from the same weights."""
    from reference import build_mmaction_recognizer, randomize_
    from slowonly_zoo.weights.convert import load_state_dict_strict, upstream_to_zoo

    entry = slowonly_zoo.get_model_info(name)
    arch = entry.architecture
    reference = randomize_(
        build_mmaction_recognizer(depth=arch.depth, num_classes=entry.num_classes, in_channels=arch.in_channels,
                                  non_local=arch.non_local, with_pool1=arch.with_pool1), seed)
    zoo = slowonly_zoo.create_model(name)
    load_state_dict_strict(zoo, upstream_to_zoo(reference.state_dict()))
    return reference.eval(), zoo.eval()


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


# -- sections ----------------------------------------------------------------------------------------------------


def bench_peak(args) -> dict:
    n = 2048 if args.quick else 4096
    out = {}
    print("\nmatmul peak (torch.mm, square matrices of", n, ")")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        times = side_by_side({"mm": lambda: torch.mm(a, b)}, max(3, args.repeats))["mm"]
        gflops = 2 * n**3 / min(times) / 1e9
        out[str(dtype)] = gflops
        print(f"  {str(dtype):16s} {gflops:8.1f} GFLOP/s")
    return out


def bench_forward(args, peak: dict | None) -> dict:
    from reference import mmaction_logits

    reference, zoo = reference_and_zoo("slowonly_r50_8x8x1_k400")
    fused = optimize_for_inference(zoo)
    fused_bf16 = optimize_for_inference(zoo, dtype=torch.bfloat16)
    compiled = optimize_for_inference(zoo, compile=True)
    compiled_bf16 = optimize_for_inference(zoo, dtype=torch.bfloat16, compile=True)
    shapes = [(30, 3, 8, 256, 256), (1, 3, 8, 224, 224)]
    if args.quick:
        shapes = [(6, 3, 8, 256, 256), (1, 3, 8, 224, 224)]
    results = {}
    for shape in shapes:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        xb = x.bfloat16()
        with torch.inference_mode():
            start = time.perf_counter()
            compiled_diff = (compiled(x) - mmaction_logits(reference, x)[1]).abs().max().item()
            compiled_bf16(xb)
            compile_seconds = time.perf_counter() - start
            _, ref_logits = mmaction_logits(reference, x)
            diff = (fused(x) - ref_logits).abs().max().item()
            probs_ref = ref_logits.softmax(-1)
            bf16_logits = fused_bf16(xb).float()
            bf16_prob_diff = (bf16_logits.softmax(-1) - probs_ref).abs().max().item()
            bf16_top1_same = bool(torch.equal(bf16_logits.argmax(-1), ref_logits.argmax(-1)))

            def run_ref():
                with torch.no_grad():
                    reference.cls_head(reference.backbone(x))

            times = side_by_side(
                {
                    "mmaction2 fp32": run_ref,
                    "slowonly-zoo fp32": lambda: fused(x),
                    "slowonly-zoo bf16": lambda: fused_bf16(xb),
                    "slowonly-zoo fp32, compiled": lambda: compiled(x),
                    "slowonly-zoo bf16, compiled": lambda: compiled_bf16(xb),
                },
                args.repeats,
            )
        flops = forward_flops(zoo, x)
        title = f"forward {shape[0]}x{tuple(shape[1:])} (N x (C,T,H,W)), {flops / 1e9:.0f} GFLOP"
        ratios = print_ratios(title, times, "mmaction2 fp32", shape[0], "views/s")
        achieved = {k: flops / min(v) / 1e9 for k, v in times.items()}
        for k, g in achieved.items():
            ceiling = peak.get("torch.bfloat16" if "bf16" in k else "torch.float32") if peak else None
            of_peak = f" = {100 * g / ceiling:.0f}% of the measured matmul peak" if ceiling else ""
            print(f"  {k:34s} {g:7.1f} GFLOP/s{of_peak}")
        print(f"  fp32 max |logit diff| vs mmaction2: {diff:.2e} (compiled: {compiled_diff:.2e});  "
              f"bf16 max |prob diff|: {bf16_prob_diff:.2e}, same top-1: {bf16_top1_same};  "
              f"one-time compilation of both compiled variants (plus one run each): {compile_seconds:.0f} s")
        results[str(shape)] = dict(times=times, ratios=ratios, gflops=achieved, fp32_max_logit_diff=diff,
                                   compiled_max_logit_diff=compiled_diff, compile_seconds=compile_seconds,
                                   bf16_max_prob_diff=bf16_prob_diff, bf16_same_top1=bf16_top1_same)
    return results


def _clips() -> list[Path]:
    if not VIDEOS.is_dir():
        raise SystemExit(f"the real clips are not at {VIDEOS}")
    return sorted(p for p in VIDEOS.iterdir() if p.suffix in (".mp4", ".avi"))


def bench_preprocess(args) -> dict:
    from mm_pipeline import mmaction_views
    from slowonly_zoo.data import TestPipeline

    results = {}
    for name in ("slowonly_r50_8x8x1_k400", "slowonly_r50_4x16x1_k400"):
        protocol = slowonly_zoo.get_model_info(name).protocol
        pipeline = TestPipeline(protocol, fmt="video")
        clips = _clips()

        def ours():
            for clip in clips:
                pipeline(clip)

        def theirs():
            for clip in clips:
                mmaction_views(protocol, clip)

        times = side_by_side({"mmaction2 (decord + cv2)": theirs, "slowonly-zoo": ours}, args.repeats)
        title = (f"test pipeline, {protocol.clip_len}x{protocol.frame_interval}x{protocol.num_clips} x "
                 f"{protocol.num_crops} crops, {len(clips)} real clips")
        ratios = print_ratios(title, times, "mmaction2 (decord + cv2)", len(clips), "videos/s")
        diffs = [float(np.abs(pipeline(c).numpy() - mmaction_views(protocol, c)).max()) for c in clips]
        print(f"  max |view diff| per clip vs mmaction2: {', '.join(f'{d:.1e}' for d in diffs)}")
        results[name] = dict(times=times, ratios=ratios, max_view_diff=diffs)
    return results


def bench_e2e(args) -> dict:
    from mm_pipeline import mmaction_views
    from slowonly_zoo.evaluation.runner import evaluate
    from slowonly_zoo.data import TestDataset

    name = "slowonly_r50_4x16x1_k400_video"
    entry = slowonly_zoo.get_model_info(name)
    reference, zoo = reference_and_zoo(name)
    clips = _clips()
    if args.quick:
        clips = clips[:2]
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "list.txt"
        ann.write_text("".join(f"{c.name} 0\n" for c in clips))
        dataset = TestDataset(entry, ann, VIDEOS, fmt="video")

        def theirs():
            scores = []
            for clip in clips:
                views = torch.from_numpy(mmaction_views(entry.protocol, clip))
                with torch.no_grad():
                    logits = reference.cls_head(reference.backbone(views))
                scores.append(logits.softmax(-1).mean(0))
            return torch.stack(scores)

        counter = iter(range(10**6))
        fused = optimize_for_inference(zoo)
        compiled = FixedBatch(optimize_for_inference(zoo, compile=True), entry.protocol.num_views)

        def ours(model=fused):
            out = Path(tmp) / f"run{next(counter)}"
            return evaluate(model, dataset, out_dir=out, progress=False, device="cpu", batch_views=30)

        times = side_by_side({"mmaction2 test loop": theirs, "slowonly-zoo verify harness": ours,
                              "slowonly-zoo verify harness, compiled": lambda: ours(compiled)},
                             max(1, args.repeats - 1))
        ratios = print_ratios(f"end to end, {name} (30 views x 4x256x256), {len(clips)} real videos", times,
                              "mmaction2 test loop", len(clips), "videos/s")
    return dict(times=times, ratios=ratios)


def bench_load(args) -> dict:
    from upstream_checkpoints import write_upstream_checkpoint
    from slowonly_zoo.weights import transfer

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SLOWONLY_ZOO_HOME"] = str(Path(tmp) / "home")
        path = write_upstream_checkpoint(Path(tmp) / "src", "slowonly_r50_8x8x1_k400", seed=0)
        # an index entry for this file (its own sha256 prefix), as a user publishing a checkpoint would add
        entry = slowonly_zoo.get_model_info("slowonly_r50_8x8x1_k400").to_dict()
        prefix = path.stem.rsplit("-", 1)[1]
        entry.update(name="bench_r50", aliases=[], config=None)
        entry["checkpoint"] = dict(url=f"https://example.invalid/{path.name}", filename=path.name,
                                   sha256_prefix=prefix)
        slowonly_zoo.register_model_entry(entry)
        transfer.import_files([path])  # verified by hash, converted to safetensors, cached
        times = side_by_side(
            {
                "torch.load(.pth) + convert + load": lambda: slowonly_zoo.create_model("bench_r50",
                                                                                       checkpoint_path=path),
                "create_model(pretrained=True), warm cache": lambda: slowonly_zoo.create_model("bench_r50",
                                                                                               pretrained=True),
            },
            args.repeats,
        )
    return dict(times=times, ratios=print_ratios("model creation with weights (R50)", times,
                                                 "torch.load(.pth) + convert + load"))


def _peak_rss_child(task: str) -> float:
    code = f"import sys; sys.argv = ['run.py', '--child', {task!r}]; exec(open({str(Path(__file__))!r}).read())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def child(task: str) -> None:
    """Run one workload and print its peak RSS in MB (used by the memory section)."""
    torch.set_num_threads(torch.get_num_threads())
    if task.startswith("forward"):
        reference, zoo = reference_and_zoo("slowonly_r50_8x8x1_k400")
        x = torch.randn(30 if "30" in task else 1, 3, 8, 256 if "30" in task else 224, 256 if "30" in task else 224)
        if task.endswith("mmaction2"):
            with torch.no_grad():
                reference.cls_head(reference.backbone(x))
        else:
            model = optimize_for_inference(zoo)
            del reference
            with torch.inference_mode():
                model(x)
    elif task.startswith("preprocess"):
        protocol = slowonly_zoo.get_model_info("slowonly_r50_8x8x1_k400").protocol
        if task.endswith("mmaction2"):
            from mm_pipeline import mmaction_views

            for clip in _clips():
                mmaction_views(protocol, clip)
        else:
            from slowonly_zoo.data import TestPipeline

            for clip in _clips():
                TestPipeline(protocol, fmt="video")(clip)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def bench_memory(args) -> dict:
    results = {}
    print("\npeak RSS (each workload in a fresh process; includes the Python + torch baseline)")
    for task in ("forward30", "forward1", "preprocess"):
        row = {impl: _peak_rss_child(f"{task}-{impl}") for impl in ("mmaction2", "zoo")}
        results[task] = row
        print(f"  {task:12s} mmaction2 {row['mmaction2']:8.0f} MB   slowonly-zoo {row['zoo']:8.0f} MB")
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}, "
            f"Python {platform.python_version()}")


def main() -> int:
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small shapes, one repeat")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    print(f"# slowonly-zoo benchmarks, {time.strftime('%Y-%m-%d')}\n# {machine()}")
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    peak = bench_peak(args) if "peak" in args.only else None
    results["peak"] = peak
    for section, fn in (("forward", lambda: bench_forward(args, peak)), ("preprocess", lambda: bench_preprocess(args)),
                        ("e2e", lambda: bench_e2e(args)), ("load", lambda: bench_load(args)),
                        ("memory", lambda: bench_memory(args))):
        if section in args.only:
            results[section] = fn()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
