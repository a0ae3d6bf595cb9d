"""slowonly-zoo against mmaction2 (from PyPI), side by side in one process, on the same inputs.

    python benchmarks/run.py                 # everything (about 20 minutes on 2 CPU cores)
    python benchmarks/run.py --only forward preprocess --repeats 5
    python benchmarks/run.py --quick         # smaller forward shapes, one repeat: a smoke run
    python benchmarks/run.py --only e2e ttfr --quick   # one clip, one round (27 min on a busy 2-core machine)

Sections:
  peak        the machine's measured fp32 / bf16 matmul throughput (GFLOP/s), the ceiling for the forward pass
  forward     model forward: a batch of 30 views of the 8x8x1 K400 protocol (3x8x256x256) and batch 1 at
              8x224x224; mmaction2 fp32 (the whole batch in one call, as its test loop does) vs slowonly-zoo as
              verify runs it (BN folded, channels-last 3D, inference mode, on CPU one view per call), eager and
              compiled, fp32 and (where the CPU has native bf16, or on CUDA) bf16
  preprocess  the test pipeline per video (decode + sample + resize + crop + normalise) on ../shared/videos
  e2e         whole evaluation: mmaction2 0.24.1's test loop (its config, dataset, DataLoader, per-video forward)
              vs slowonly-zoo's verify, 4x16x1 and 8x8x1, videos and frame folders, same clips and checkpoint; in
              one child process that imports mmaction2 0.24.1 (.reference/mm0x) instead of 1.2.0
  ttfr        time to first result: predict on one video in a fresh process (import, build, load, decode,
              forward), --clips 1 and the full protocol, vs 0.24.1's init_recognizer + inference_recognizer
  load        create_model(pretrained=True) from a warm cache (safetensors) vs torch.load of the upstream .pth
  memory      peak RSS of each forward / pipeline / evaluation (each in a fresh subprocess, so peaks do not mix)
  train       one SGD step of the 8x8x1 R50 (batch 8 x 3x8x224x224 fp32: forward, backward, clip, update), mmaction2
              1.2.0 vs slowonly-zoo (channels-last 3D, foreach SGD, eager and compiled), with peak RSS; and the train
              data pipeline (resize, random resized crop, flip) in clips/s on ../shared/videos
  compile     `--compile`'s one-time cost, first run (empty compile cache) vs warm run (the cache under
              SLOWONLY_ZOO_HOME kept from the first), each in a fresh process: the 8x8x1 R50, one 3x8x224x224 view
  export      the ONNX export (slowonly-zoo export --format onnx) run by onnxruntime on CPU (an InferenceSession with
              torch's thread count, one view per run as verify feeds the eager model) vs the eager inference form
              (BN folded, channels-last 3D, forward_views), same input: 1 view 3x8x224x224 and (not with --quick) 30
              views 3x8x256x256 of the 8x8x1 R50 with random weights; ratios are eager time / onnxruntime time

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
from slowonly_zoo.models.fuse import optimize_for_inference  # noqa: E402
from slowonly_zoo.runtime import forward_views  # noqa: E402

SECTIONS = ("peak", "forward", "preprocess", "e2e", "ttfr", "load", "memory", "train", "compile", "export")


# -- timing helpers ----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], sync: Callable[[], None] = lambda: None) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def side_by_side(impls: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """Run each implementation once to warm up (unless not ``warmup``), then ``repeats`` rounds, alternating
    implementations."""
    for fn in impls.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            times[name].append(timed(fn))
    return times


def summary(times: list[float]) -> str:
    return f"min {min(times):8.3f} s  median {statistics.median(times):8.3f} s"


def print_ratios(
    title: str, times: dict[str, list[float]], baseline: str, unit_count: float = 1.0, unit: str = ""
) -> dict[str, float]:
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
        build_mmaction_recognizer(
            depth=arch.depth,
            num_classes=entry.num_classes,
            in_channels=arch.in_channels,
            non_local=arch.non_local,
            with_pool1=arch.with_pool1,
        ),
        seed,
    )
    zoo = slowonly_zoo.create_model(name)
    load_state_dict_strict(zoo, upstream_to_zoo(reference.state_dict()))
    return reference.eval(), zoo.eval()


def zoo_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """slowonly-zoo's forward over a batch of views as it runs them on this device (one view per pass on CPU)."""
    return forward_views(model, x, x.device, x.shape[0])


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        return "avx512_bf16" in flags or "amx_bf16" in flags


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


# -- sections ----------------------------------------------------------------------------------------------------


def bench_peak(args) -> dict:
    """The measured compute ceiling: the better of a large matmul (BLAS) and a large 1x1x1 convolution (oneDNN,
    channels-last), since on some CPUs (e.g. AMD with MKL) one library's kernels are much faster than the other's."""
    n = 2048 if args.quick else 4096
    out = {}
    print(f"\nmeasured peak: torch.mm of {n}x{n} matrices; 1x1x1 Conv3d 512->512 on 8x512x8x32x32, channels-last")
    dtypes = (torch.float32, torch.bfloat16) if native_bf16() or torch.cuda.is_available() else (torch.float32,)
    for dtype in dtypes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        conv = torch.nn.Conv3d(512, 512, 1).to(dtype=dtype, memory_format=torch.channels_last_3d).eval()
        x = torch.randn(8, 512, 8, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            times = side_by_side({"mm": lambda: torch.mm(a, b), "conv": lambda: conv(x)}, max(3, args.repeats))
        mm = 2 * n**3 / min(times["mm"]) / 1e9
        conv_gflops = 2 * x.numel() * 512 / min(times["conv"]) / 1e9
        out[str(dtype)] = max(mm, conv_gflops)
        print(f"  {dtype!s:16s} matmul {mm:8.1f} GFLOP/s   1x1x1 conv {conv_gflops:8.1f} GFLOP/s")
    return out


def bench_forward(args, peak: dict | None) -> dict:
    from reference import mmaction_logits

    reference, zoo = reference_and_zoo("slowonly_r50_8x8x1_k400")
    bf16 = native_bf16()
    if not bf16:
        print("\nbf16 rows skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX), so bf16 would be emulated")
    fused = optimize_for_inference(zoo)
    compiled = optimize_for_inference(zoo, compile=True)
    if bf16:
        fused_bf16 = optimize_for_inference(zoo, dtype=torch.bfloat16)
        compiled_bf16 = optimize_for_inference(zoo, dtype=torch.bfloat16, compile=True)
    shapes = [(30, 3, 8, 256, 256), (1, 3, 8, 224, 224)]
    if args.quick:
        shapes = [(6, 3, 8, 256, 256), (1, 3, 8, 224, 224)]
    results = {}
    for shape in shapes:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        xb = x.bfloat16()
        with torch.inference_mode():
            _, ref_logits = mmaction_logits(reference, x)
            start = time.perf_counter()
            compiled_diff = (zoo_forward(compiled, x) - ref_logits).abs().max().item()
            if bf16:
                zoo_forward(compiled_bf16, xb)
            compile_seconds = time.perf_counter() - start
            diff = (zoo_forward(fused, x) - ref_logits).abs().max().item()
            bf16_prob_diff, bf16_top1_same = None, None
            if bf16:
                bf16_logits = zoo_forward(fused_bf16, xb).float()
                bf16_prob_diff = (bf16_logits.softmax(-1) - ref_logits.softmax(-1)).abs().max().item()
                bf16_top1_same = bool(torch.equal(bf16_logits.argmax(-1), ref_logits.argmax(-1)))

            def run_ref():
                with torch.no_grad():
                    reference.cls_head(reference.backbone(x))

            def run_plain():  # what `create_model(...).eval()` gives a user: no folding, the whole batch per call
                with torch.no_grad():
                    zoo(x)

            impls = {
                "mmaction2 fp32": run_ref,
                "slowonly-zoo fp32": lambda: zoo_forward(fused, x),
                "slowonly-zoo fp32, compiled": lambda: zoo_forward(compiled, x),
                "slowonly-zoo plain module (eval)": run_plain,
            }
            if bf16:
                impls["slowonly-zoo bf16"] = lambda: zoo_forward(fused_bf16, xb)
                impls["slowonly-zoo bf16, compiled"] = lambda: zoo_forward(compiled_bf16, xb)
            times = side_by_side(impls, args.repeats)
        flops = forward_flops(zoo, x)
        title = f"forward {shape[0]}x{tuple(shape[1:])} (N x (C,T,H,W)), {flops / 1e9:.0f} GFLOP"
        ratios = print_ratios(title, times, "mmaction2 fp32", shape[0], "views/s")
        achieved = {k: flops / min(v) / 1e9 for k, v in times.items()}
        for k, g in achieved.items():
            ceiling = peak.get("torch.bfloat16" if "bf16" in k else "torch.float32") if peak else None
            of_peak = f" = {100 * g / ceiling:.0f}% of the measured matmul peak" if ceiling else ""
            print(f"  {k:34s} {g:7.1f} GFLOP/s{of_peak}")
        bf16_text = f"bf16 max |prob diff|: {bf16_prob_diff:.2e}, same top-1: {bf16_top1_same};  " if bf16 else ""
        print(
            f"  fp32 max |logit diff| vs mmaction2: {diff:.2e} (compiled: {compiled_diff:.2e});  {bf16_text}"
            f"one-time compilation of the compiled variants (plus one run each): {compile_seconds:.0f} s"
        )
        results[str(shape)] = dict(
            times=times,
            ratios=ratios,
            gflops=achieved,
            fp32_max_logit_diff=diff,
            compiled_max_logit_diff=compiled_diff,
            compile_seconds=compile_seconds,
            bf16_max_prob_diff=bf16_prob_diff,
            bf16_same_top1=bf16_top1_same,
        )
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
        pipeline = TestPipeline(protocol, source_format="video")
        clips = _clips()

        def ours():
            for clip in clips:
                pipeline(clip)

        def theirs():
            for clip in clips:
                mmaction_views(protocol, clip)

        times = side_by_side({"mmaction2 (decord + cv2)": theirs, "slowonly-zoo": ours}, args.repeats)
        title = (
            f"test pipeline, {protocol.clip_len}x{protocol.frame_interval}x{protocol.num_clips} x "
            f"{protocol.num_crops} crops, {len(clips)} real clips"
        )
        ratios = print_ratios(title, times, "mmaction2 (decord + cv2)", len(clips), "videos/s")
        diffs = [float(np.abs(pipeline(c).numpy() - mmaction_views(protocol, c)).max()) for c in clips]
        print(f"  max |view diff| per clip vs mmaction2: {', '.join(f'{d:.1e}' for d in diffs)}")
        results[name] = dict(times=times, ratios=ratios, max_view_diff=diffs)
    return results


E2E_MODEL = "slowonly_r50_4x16x1_k400_video"


def mmaction_test_loop(reference: torch.nn.Module, protocol, clips: list[Path]) -> torch.Tensor:
    """mmaction2's test loop: per video its pipeline, all views through the model at once, softmax, mean."""
    from mm_pipeline import mmaction_views

    scores = []
    for clip in clips:
        views = torch.from_numpy(mmaction_views(protocol, clip))
        with torch.no_grad():
            logits = reference.cls_head(reference.backbone(views))
        scores.append(logits.softmax(-1).mean(0))
    return torch.stack(scores)


def zoo_verify_harness(model: torch.nn.Module, clips: list[Path], out_dir: Path) -> None:
    """slowonly-zoo's verify harness (DataLoader workers as default, batches, resumable records) over ``clips``."""
    from slowonly_zoo.data import TestDataset
    from slowonly_zoo.evaluation.runner import evaluate

    out_dir.mkdir(parents=True, exist_ok=True)
    ann = out_dir / "list.txt"
    ann.write_text("".join(f"{c.name} 0\n" for c in clips))
    dataset = TestDataset(slowonly_zoo.get_model_info(E2E_MODEL), ann, clips[0].parent, source_format="video")
    evaluate(model, dataset, out_dir=out_dir / "run", progress=False, device="cpu", batch_views=30)


def bench_e2e(args) -> dict:
    """End to end, slowonly-zoo's ``verify`` vs mmaction2 0.24.1's test loop, 4x16x1 and 8x8x1, videos and frame
    folders: in a child process that imports the 0.x reference instead of 1.2.0 (see ``benchmarks/end_to_end.py``)."""
    from end_to_end import bench_e2e as e2e_vs_0x

    return e2e_vs_0x(args.quick, args.repeats)


def bench_ttfr(args) -> dict:
    """Time to first result of ``slowonly-zoo predict`` vs mmaction2 0.24.1's inference API, fresh processes."""
    from end_to_end import bench_ttfr as ttfr

    return ttfr(args.quick, args.repeats)


_COMPILE_CHILD = """
import json, sys, time
import torch
import slowonly_zoo
from slowonly_zoo.models.fuse import optimize_for_inference
from slowonly_zoo.runtime import forward_views
from torch._dynamo.utils import counters

model = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", pretrained=False).eval()
torch.manual_seed(0)
with torch.no_grad():  # weights of a trained model's scale (random init has denormals that slow the CPU)
    for p in model.parameters():
        p.copy_(torch.randn_like(p) * 0.02)
compiled = optimize_for_inference(model, compile=True)
x = torch.randn(1, 3, 8, 224, 224)
cpu = torch.device("cpu")
times = []
for _ in range(3):
    start = time.perf_counter()
    forward_views(compiled, x, cpu, 1)
    times.append(time.perf_counter() - start)
print(json.dumps({"first_call": times[0], "steady": min(times[1:]),
                  "fx_cache_hits": counters["inductor"]["fxgraph_cache_hit"]}))
"""


def bench_compile(args) -> dict:
    """``--compile``'s cost in a fresh process with an empty compile cache, then again with the cache the first run
    left under SLOWONLY_ZOO_HOME: the first call's time minus a steady call's is the compile."""
    print("\ncompile: the 8x8x1 R50 with torch.compile (weight freezing), one 3x8x224x224 view, fresh processes")
    results = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SLOWONLY_ZOO_HOME": home}
        env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        for run in ("first run (empty cache)", "warm run (cache kept)"):
            out = subprocess.run(
                [sys.executable, "-c", _COMPILE_CHILD], env=env, capture_output=True, text=True, check=True
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r["compile"] = r["first_call"] - r["steady"]
            print(
                f"  {run:26s} first call {r['first_call']:7.1f} s, steady {r['steady']:6.2f} s: compile "
                f"{r['compile']:6.1f} s (FX graph cache hits: {r['fx_cache_hits']})"
            )
            results[run] = r
    first, warm = results.values()
    print(f"  the kept cache saves {first['compile'] - warm['compile']:.1f} s of compile per run")
    return results


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
        entry["checkpoint"] = dict(url=f"https://example.invalid/{path.name}", filename=path.name, sha256_prefix=prefix)
        slowonly_zoo.register_model_entry(entry)
        transfer.import_files([path])  # verified by hash, converted to safetensors, cached
        times = side_by_side(
            {
                "torch.load(.pth) + convert + load": lambda: slowonly_zoo.create_model(
                    "bench_r50", checkpoint_path=path
                ),
                "create_model(pretrained=True), warm cache": lambda: slowonly_zoo.create_model(
                    "bench_r50", pretrained=True
                ),
            },
            args.repeats,
        )
    return dict(
        times=times,
        ratios=print_ratios("model creation with weights (R50)", times, "torch.load(.pth) + convert + load"),
    )


def _peak_rss_child(task: str) -> tuple[float, float, float]:
    """(RSS before, peak RSS during, peak RSS of the largest child process) in MB of ``task``, run in a fresh
    interpreter."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--child", task], capture_output=True, text=True, check=True
    )
    before, peak, workers = out.stdout.strip().splitlines()[-1].split()
    return float(before), float(peak), float(workers)


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(task: str) -> None:
    """Run one workload and print, in MB: the RSS before it (models built, inputs made), the peak RSS during it
    (Linux's VmHWM, reset just before the workload), and the peak RSS of the largest child process (the DataLoader
    worker of the e2e workload)."""
    workload, impl = task.rsplit("-", 1)
    name = E2E_MODEL if workload == "e2e" else "slowonly_r50_8x8x1_k400"
    if workload.startswith("forward") or workload == "e2e":
        reference, zoo = reference_and_zoo(name)
        if impl == "zoo":
            del reference
            model = optimize_for_inference(zoo)
    size = 256 if workload == "forward30" else 224
    x = torch.randn(30 if workload == "forward30" else 1, 3, 8, size, size) if workload.startswith("forward") else None
    before = _proc_status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    if workload.startswith("forward"):
        with torch.inference_mode():
            if impl == "mmaction2":
                reference.cls_head(reference.backbone(x))
            else:
                zoo_forward(model, x)
    elif workload == "e2e":
        clips = _clips()[:2]
        if impl == "mmaction2":
            mmaction_test_loop(reference, slowonly_zoo.get_model_info(name).protocol, clips)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                zoo_verify_harness(model, clips, Path(tmp))
    elif workload == "preprocess":
        protocol = slowonly_zoo.get_model_info(name).protocol
        if impl == "mmaction2":
            from mm_pipeline import mmaction_views

            for clip in _clips():
                mmaction_views(protocol, clip)
        else:
            from slowonly_zoo.data import TestPipeline

            for clip in _clips():
                TestPipeline(protocol, source_format="video")(clip)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workload == "e2e" else 0.0
    print(f"{before} {_proc_status_mb('VmHWM')} {workers}")


def bench_memory(args) -> dict:
    results = {}
    print(
        "\npeak RSS during each workload over the RSS before it (models built), each in a fresh process; "
        "e2e adds its DataLoader worker's peak"
    )
    for task in ("forward30", "forward1", "preprocess", "e2e"):
        row = {impl: _peak_rss_child(f"{task}-{impl}") for impl in ("mmaction2", "zoo")}
        results[task] = row
        print(
            f"  {task:12s} "
            + "   ".join(
                f"{impl} +{peak - before:6.0f} MB (over {before:.0f})"
                + (f" + worker {worker:.0f} MB" if worker else "")
                for impl, (before, peak, worker) in (("mmaction2", row["mmaction2"]), ("slowonly-zoo", row["zoo"]))
            )
        )
    return results


TRAIN_MODEL = "slowonly_r50_8x8x1_k400"


def _train_inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, 8, size, size, generator=gen), torch.randint(0, 400, (batch,), generator=gen)


def _train_steps(batch: int, size: int, impls: tuple[str, ...]) -> dict[str, Callable[[], object]]:
    """One SGD step (forward, CrossEntropy, backward, clip to 40, update) per implementation, from the same weights:
    mmaction2 1.2.0's recognizer (the venv's reference: same backbone and head as 0.24.1) with ``torch.optim.SGD``
    over all parameters (mmcv's default constructor) and ``clip_grad_norm_``, as mmcv's ``OptimizerHook`` runs it;
    slowonly-zoo's ``train_step`` with ``build_sgd`` (foreach), channels-last 3D, eager and ``torch.compile``d."""
    import torch.nn.functional as F

    from slowonly_zoo.training import build_sgd, train_step

    reference, zoo = reference_and_zoo(TRAIN_MODEL)
    x, y = _train_inputs(batch, size)
    steps: dict[str, Callable[[], object]] = {}
    if "mmaction2" in impls:
        reference.train()
        ref_opt = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

        def ref_step() -> None:
            ref_opt.zero_grad()
            loss = F.cross_entropy(reference.cls_head(reference.backbone(x)), y)
            loss.backward()
            params = [p for p in reference.parameters() if p.requires_grad and p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_norm=40, norm_type=2)
            ref_opt.step()

        steps["mmaction2 fp32"] = ref_step
    else:
        reference = None  # not measured: free it
    zoo = zoo.train().to(memory_format=torch.channels_last_3d)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    opt = build_sgd(zoo, lr=0.01)
    if "zoo" in impls:
        steps["slowonly-zoo fp32"] = lambda: train_step(zoo, opt, x_cl, y, max_norm=40)
    if "compiled" in impls:
        compiled = torch.compile(zoo)
        steps["slowonly-zoo fp32, compiled"] = lambda: train_step(compiled, opt, x_cl, y, max_norm=40)
    if "bf16" in impls and native_bf16():
        steps["slowonly-zoo bf16 autocast"] = lambda: train_step(
            zoo, opt, x_cl, y, max_norm=40, autocast_dtype=torch.bfloat16
        )
    return steps


def train_child(impl: str, batch: int, size: int) -> None:
    """Print (RSS before, peak RSS during) in MB of the first training step of ``impl`` (model and input built,
    optimizer state not yet), in this fresh process: what a step needs, allocator pools not yet warm."""
    (step,) = _train_steps(batch, size, (impl,)).values()
    before = _proc_status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    step()
    print(f"{before} {_proc_status_mb('VmHWM')}")


def _train_memory(impl: str, batch: int, size: int) -> tuple[float, float]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import run; "
        f"run.train_child({impl!r}, {batch}, {size})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the {impl} training-memory child failed:\n{out.stderr[-3000:]}")
    before, peak = out.stdout.strip().splitlines()[-1].split()
    return float(before), float(peak)


def _mmaction_train_pipeline():
    """mmaction2 1.2.0's train pipeline of the 8x8x1 K400 recipe on a video, with PyAV as decoder (decord is not a
    dependency here), and 0.x's Normalize on the result (1.x normalises in its data preprocessor)."""
    from reference import import_mmaction

    import_mmaction()
    from mmaction.datasets.transforms import (
        Flip,
        FormatShape,
        PyAVDecode,
        PyAVInit,
        RandomResizedCrop,
        Resize,
        SampleFrames,
    )
    from mmcv.transforms import Compose

    pipeline = Compose(
        [
            PyAVInit(),
            SampleFrames(clip_len=8, frame_interval=8, num_clips=1),
            PyAVDecode(),
            Resize(scale=(-1, 256)),
            RandomResizedCrop(),
            Resize(scale=(224, 224), keep_ratio=False),
            Flip(flip_ratio=0.5),
            FormatShape(input_format="NCTHW"),
        ]
    )
    mean = np.array([123.675, 116.28, 103.53], dtype=np.float32).reshape(1, 3, 1, 1, 1)
    std = np.array([58.395, 57.12, 57.375], dtype=np.float32).reshape(1, 3, 1, 1, 1)

    def run(path: Path) -> np.ndarray:
        imgs = pipeline(dict(filename=str(path), label=0, start_index=0, modality="RGB"))["imgs"]
        return (imgs.astype(np.float32) - mean) / std

    return run


def bench_train(args) -> dict:
    """Training: one SGD step of the 8x8x1 R50 (batch 8 x 3x8x224x224, fp32; --quick: batch 2), slowonly-zoo vs
    mmaction2 1.2.0 in-process on the same weights and input, with each one's peak RSS (fresh processes), plus
    bf16 autocast where the CPU has native bf16; and the train data pipeline's clips/s on ../shared/videos."""
    batch, size = (2, 224) if args.quick else (8, 224)
    results: dict = {}
    # memory first, while this process holds no models: the children need several GB each at batch 8
    memory = {impl: _train_memory(impl, batch, size) for impl in ("mmaction2", "zoo")}
    steps = _train_steps(batch, size, ("mmaction2", "zoo", "compiled", "bf16"))
    start = time.perf_counter()
    try:
        steps["slowonly-zoo fp32, compiled"]()  # compiles forward and backward
        compile_seconds: float | None = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a benchmark row, not a failure of the package
        print(f"\ntorch.compile of the training step failed ({type(exc).__name__}: {exc}); row left out")
        steps.pop("slowonly-zoo fp32, compiled")
        compile_seconds = None
    times = side_by_side(steps, args.repeats)
    title = f"train step, batch {batch} x (3, 8, {size}, {size}) fp32: forward, backward, clip 40, SGD update"
    ratios = print_ratios(title, times, "mmaction2 fp32", batch, "clips/s")
    if compile_seconds is not None:
        print(f"  one-time compilation of the compiled step (plus one run): {compile_seconds:.0f} s")
    del steps
    print(
        "  peak RSS of the first step over the RSS before it, each in a fresh process: "
        + "   ".join(f"{impl} +{peak - before:6.0f} MB (over {before:.0f})" for impl, (before, peak) in memory.items())
    )
    results["step"] = dict(
        batch=batch, size=size, times=times, ratios=ratios, compile_seconds=compile_seconds, peak_rss_mb=memory
    )
    results["pipeline"] = bench_train_pipeline(args)
    return results


def bench_train_pipeline(args) -> dict:
    """The train data pipeline of the 8x8x1 K400 recipe, clips/s on ../shared/videos, vs mmaction2 1.2.0's."""
    from slowonly_zoo.training import TrainPipeline

    clips = _clips()
    ours = TrainPipeline(8, 8, resize_short=256, out_size=224, flip_ratio=0.5, source_format="video")
    theirs = _mmaction_train_pipeline()
    rng = np.random.default_rng(0)
    rounds = 1 if args.quick else 3
    times = side_by_side(
        {
            "mmaction2 (PyAV + cv2)": lambda: [theirs(c) for c in clips for _ in range(rounds)],
            "slowonly-zoo": lambda: [ours(c, 0, rng) for c in clips for _ in range(rounds)],
        },
        args.repeats,
    )
    title = f"train pipeline 8x8x1 (resize 256, random resized crop 224, flip), {len(clips)} real clips x {rounds}"
    ratios = print_ratios(title, times, "mmaction2 (PyAV + cv2)", len(clips) * rounds, "clips/s")
    return dict(times=times, ratios=ratios)


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
"""The CPU flags every figure depends on (fp32 vector width, native bf16), printed in the machine line."""


def bench_export(args) -> dict:
    """onnxruntime CPU vs the eager inference form on the same views (see the module docstring)."""
    import onnxruntime
    from reference import randomize_

    from slowonly_zoo import deploy

    name = "slowonly_r50_8x8x1_k400"
    model = randomize_(slowonly_zoo.create_model(name), 0).eval()
    fused = optimize_for_inference(model)
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        exported = deploy.export_model(
            model, slowonly_zoo.get_model_info(name), folder, "onnx", view_shape=(3, 8, 224, 224)
        )
        export_seconds = time.perf_counter() - start
        print(
            f"\nexport: ONNX opset {deploy.ONNX_OPSET} of {name} (random weights) written and checked in "
            f"{export_seconds:.0f} s; check max |logit diff| {exported.max_abs_diff:.2e}"
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(exported.artefact), options, providers=["CPUExecutionProvider"])
        shapes = [(1, 3, 8, 224, 224)] + ([] if args.quick else [(30, 3, 8, 256, 256)])
        for shape in shapes:
            x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            views = x.numpy()

            def run_ort(views=views):
                return np.concatenate(
                    [session.run(["logits"], {"video": views[i : i + 1]})[0] for i in range(len(views))]
                )

            def run_eager(x=x):
                return zoo_forward(fused, x)

            diff = (torch.from_numpy(run_ort()) - run_eager()).abs().max().item()
            baseline = "slowonly-zoo eager (inference form)"
            times = side_by_side({baseline: run_eager, "onnxruntime CPU": run_ort}, args.repeats)
            ratios = print_ratios(
                f"export: forward {shape[0]}x{tuple(shape[1:])}", times, baseline, shape[0], "views/s"
            )
            print(f"  max |logit diff| onnxruntime vs eager inference form: {diff:.2e}")
            results[str(shape)] = dict(times=times, ratios=ratios, max_logit_diff=diff)
    results["export_seconds"] = export_seconds
    return results


def machine() -> str:
    """CPU model, which of :data:`CPU_FLAGS` it has, cores, threads, torch, GPU and date: the line every figure
    needs beside it, since this project's machines differ (AVX2-only EPYC, Zen 4 with AVX-512 bf16, AMX Xeon)."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:  # the first processor's "model name" and "flags" lines
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu} (flags: {have}), {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


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
    for section, fn in (
        ("forward", lambda: bench_forward(args, peak)),
        ("preprocess", lambda: bench_preprocess(args)),
        ("e2e", lambda: bench_e2e(args)),
        ("ttfr", lambda: bench_ttfr(args)),
        ("load", lambda: bench_load(args)),
        ("memory", lambda: bench_memory(args)),
        ("train", lambda: bench_train(args)),
        ("compile", lambda: bench_compile(args)),
        ("export", lambda: bench_export(args)),
    ):
        if section in args.only:
            results[section] = fn()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
