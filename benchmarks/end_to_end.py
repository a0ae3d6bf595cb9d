"""The ``e2e`` and ``ttfr`` sections of ``benchmarks/run.py``: what a user waits for, against mmaction2 0.24.1.

mmaction2 0.24.1 + mmcv 1.7.0 (``.reference/mm0x``, the code behind the README's reported numbers) cannot share a
process with mmaction2 1.2.0, which the other sections import under the same package names. So:

* ``e2e`` runs in a child interpreter started with ``PYTHONPATH=.reference/mm0x`` (this file as a script): that one
  process imports the 0.x reference and slowonly-zoo, never mmaction2 1.2.0, and times, side by side on the same
  clips and the same seeded random checkpoint (written in the upstream layout), mmaction2 0.24.1's test loop
  (``tools/test.py``: its config's recognizer and ``data.test`` dataset, ``build_dataloader`` with the config's
  workers, ``model(return_loss=False, imgs=...)`` per video, as ``single_gpu_test`` runs it, here on CPU) against
  slowonly-zoo's public ``verify`` with its default options. Both are timed from building the model to the last
  video's scores. The parent only starts the child and lets it print.
* ``ttfr`` (time to first result) times fresh interpreters, each run once per measurement: ``slowonly-zoo predict
  NAME VIDEO`` from a warm cache (a temporary ``SLOWONLY_ZOO_HOME`` filled by ``slowonly-zoo import``) against
  0.24.1's ``init_recognizer`` + ``inference_recognizer`` with its config and the same checkpoint file: interpreter
  start, imports, model build, weight loading, decoding and forward, for one clip and for the full protocol.

The frame-folder rows use JPEG frames of ``../shared/videos`` extracted (PyAV + Pillow) into upstream's rawframes
layout (``img_{:05}.jpg``, first frame 1) in a temporary folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "videos"
REFERENCE_0X = REPO / ".reference" / "mm0x"
CONFIGS_0X = REFERENCE_0X / "mmaction" / ".mim" / "configs" / "recognition" / "slowonly"
QUICK_CLIPS = ("arm_wrestling.mp4",)
"""--quick: one clip (an MP4, where decord's and PyAV's frames agree), so the section runs in a few minutes."""


@dataclass(frozen=True)
class Case:
    """One e2e row: a zoo entry, the 0.x config behind it, and what it reads."""

    entry: str
    config: str
    source_format: str  # 'video' or 'rawframes'

    @property
    def label(self) -> str:
        protocol = self.entry.split("_")[2]
        return f"{protocol} {'videos' if self.source_format == 'video' else 'frame folders'} ({self.entry})"


CASES = (
    Case("slowonly_r50_4x16x1_k400_video", "slowonly_r50_video_4x16x1_256e_kinetics400_rgb.py", "video"),
    Case("slowonly_r50_4x16x1_k400", "slowonly_r50_4x16x1_256e_kinetics400_rgb.py", "rawframes"),
    # 0.x publishes no 8x8x1 K400 video config: the frames config with data.test pointed at the videos through
    # 0.x's video test pipeline (DecordInit, DecordDecode), and the zoo's frames entry with source_format='video'
    Case("slowonly_r50_8x8x1_k400", "slowonly_r50_8x8x1_256e_kinetics400_rgb.py", "video"),
    Case("slowonly_r50_8x8x1_k400", "slowonly_r50_8x8x1_256e_kinetics400_rgb.py", "rawframes"),
)
TTFR_ENTRY = "slowonly_r50_4x16x1_k400_video"
TTFR_CONFIG = "slowonly_r50_video_4x16x1_256e_kinetics400_rgb.py"


def clips(quick: bool) -> list[Path]:
    if not VIDEOS.is_dir():
        raise SystemExit(f"the real clips are not at {VIDEOS}")
    found = sorted(p for p in VIDEOS.iterdir() if p.suffix in (".mp4", ".avi"))
    return [p for p in found if p.name in QUICK_CLIPS] if quick else found


def row(work: str, theirs: float, ours: float) -> str:
    """One table row: ``work | mmaction2 | slowonly-zoo | ratio`` (ratio = mmaction2 time / ours)."""
    return f"  {work} | {theirs:8.2f} s | {ours:8.2f} s | {theirs / ours:5.2f}x"


def _min_median(values: list[float]) -> str:
    return f"min {min(values):.2f} s, median {statistics.median(values):.2f} s over {len(values)}"


# -- parent side ---------------------------------------------------------------------------------------------------


def reference_env() -> dict[str, str]:
    """This environment with the 0.x reference first on ``PYTHONPATH``."""
    if not (REFERENCE_0X / "mmaction").is_dir():
        raise SystemExit(f"mmaction2 0.24.1 is missing from {REFERENCE_0X}; run `bash tests/install_reference_0x.sh`")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REFERENCE_0X), *filter(None, [env.get("PYTHONPATH")])])
    return env


def bench_e2e(quick: bool, repeats: int) -> dict:
    """Run the e2e section in a child interpreter that imports mmaction2 0.24.1 (not 1.2.0); return its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e2e.json"
        cmd = [sys.executable, str(Path(__file__)), "e2e", "--repeats", str(repeats), "--json", str(out)]
        proc = subprocess.run(cmd + (["--quick"] if quick else []), env=reference_env(), cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"the e2e child process failed (exit {proc.returncode}); its output is above")
        return json.loads(out.read_text())


def _write_extra_index(path: Path, name: str, checkpoint: Path) -> None:
    """An extra index holding ``name``: a copy of the TTFR entry whose checkpoint is ``checkpoint``."""
    import dataclasses

    import yaml

    from slowonly_zoo.index import get_model_info
    from slowonly_zoo.index.records import Checkpoint
    from slowonly_zoo.index.schema import entry_to_index

    entry = dataclasses.replace(
        get_model_info(TTFR_ENTRY),
        name=name,
        aliases=(),
        checkpoint=Checkpoint(
            url=f"https://example.invalid/{checkpoint.name}",
            filename=checkpoint.name,
            sha256_prefix=checkpoint.stem.rsplit("-", 1)[1],
        ),
    )
    path.write_text(yaml.safe_dump({"Models": [entry_to_index(entry)]}, sort_keys=False), encoding="utf-8")


def _zoo_cli() -> list[str]:
    script = Path(sys.executable).with_name("slowonly-zoo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "slowonly_zoo"]


_MM_INFERENCE = """\
import json, sys, warnings
import numpy as np
np.int = int  # mmaction2 0.24.1 uses np.int, which numpy 1.24 removed
warnings.filterwarnings("ignore")
import mmcv
from mmaction.apis import inference_recognizer, init_recognizer
config, checkpoint, video, one_clip = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
cfg = mmcv.Config.fromfile(config)
if one_clip:  # what the zoo's --clips 1 runs: one clip, one centre crop of the protocol's crop size
    for step in cfg.data.test.pipeline:
        if step["type"] == "SampleFrames":
            step["num_clips"] = 1
        if step["type"] == "ThreeCrop":
            step["type"] = "CenterCrop"
model = init_recognizer(cfg, checkpoint, device="cpu")
top = inference_recognizer(model, video)
print(json.dumps({"top1": int(top[0][0]), "prob": float(top[0][1])}))
"""


def _fresh_run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def bench_ttfr(quick: bool, repeats: int) -> dict:
    """Time to first result of ``predict`` on one video, each run a fresh interpreter, vs 0.24.1's inference API."""
    sys.path.insert(0, str(REPO / "tests"))
    from upstream_checkpoints import write_upstream_checkpoint

    video = clips(True)[0]
    name = "bench_ttfr_r50_4x16x1_video"
    results: dict[str, Any] = {"video": video.name, "entry": TTFR_ENTRY, "rows": {}}
    print(f"\ntime to first result: predict on {video.name}, each run a fresh process (warm weights cache)")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_upstream_checkpoint(Path(tmp) / "src", TTFR_ENTRY, seed=0)
        index = Path(tmp) / "extra_index.yml"
        _write_extra_index(index, name, ckpt)
        zoo_env = dict(os.environ, SLOWONLY_ZOO_HOME=str(Path(tmp) / "home"), SLOWONLY_ZOO_EXTRA_INDEX=str(index))
        zoo_env["SLOWONLY_ZOO_OFFLINE"] = "1"
        _fresh_run([*_zoo_cli(), "import", str(ckpt)], zoo_env)  # the warm cache: verified, converted, cached
        mm_env = reference_env()
        script = Path(tmp) / "mm_inference.py"
        script.write_text(_MM_INFERENCE)
        config = str(CONFIGS_0X / TTFR_CONFIG)
        for label, one_clip in (("--clips 1 (1 view)", True), ("full protocol (30 views)", False)):
            zoo_cmd = [*_zoo_cli(), "predict", name, str(video), "--json", "--topk", "1"]
            zoo_cmd += ["--clips", "1"] if one_clip else []
            mm_cmd = [sys.executable, str(script), config, str(ckpt), str(video), "1" if one_clip else "0"]
            times: dict[str, list[float]] = {"mmaction2": [], "zoo": []}
            outputs: dict[str, str] = {}
            for round_ in range(repeats + (0 if quick else 1)):  # full runs: one untimed warm-up (OS file cache)
                for impl, cmd, env in (("mmaction2", mm_cmd, mm_env), ("zoo", zoo_cmd, zoo_env)):
                    seconds, outputs[impl] = _fresh_run(cmd, env)
                    if quick or round_ > 0:
                        times[impl].append(seconds)
            mm = json.loads(outputs["mmaction2"].strip().splitlines()[-1])
            zoo_top = json.loads(outputs["zoo"])[0]["topk"][0]
            work = f"time to first result, predict {label}, 4x16x1 video"
            print(row(work, min(times["mmaction2"]), min(times["zoo"])))
            print(
                f"    mmaction2 {_min_median(times['mmaction2'])}; slowonly-zoo {_min_median(times['zoo'])}; "
                f"top-1 mmaction2 {mm['top1']} ({mm['prob']:.4f}), slowonly-zoo {zoo_top['index']} "
                f"({zoo_top['prob']:.4f})"
            )
            results["rows"][label] = dict(times=times, mmaction2_top1=mm, zoo_top1=zoo_top)
    return results


# -- child side (PYTHONPATH=.reference/mm0x: mmaction2 0.24.1, never 1.2.0) ---------------------------------------


def extract_frames(videos: list[Path], root: Path) -> dict[str, int]:
    """Every frame of each video as ``root/<stem>/img_{:05}.jpg`` from 1 (upstream's rawframes layout); the counts."""
    import av

    counts = {}
    for video in videos:
        folder = root / video.stem
        folder.mkdir(parents=True)
        with av.open(str(video)) as container:
            count = 0
            for count, frame in enumerate(container.decode(video=0), start=1):
                frame.to_image().save(folder / f"img_{count:05}.jpg", quality=95)
        counts[video.stem] = count
    return counts


def _mm_test_config(case: Case, ann_file: Path, data_root: Path) -> Any:
    """The 0.x config of ``case`` with ``data.test`` pointed at our list and folder."""
    import mmcv

    cfg = mmcv.Config.fromfile(str(CONFIGS_0X / case.config))
    test = cfg.data.test
    test.ann_file, test.data_prefix, test.test_mode = str(ann_file), str(data_root), True
    if case.source_format == "video" and test.type != "VideoDataset":
        pipeline = [dict(type="DecordInit")]
        for step in copy.deepcopy(test.pipeline):
            pipeline.append(dict(type="DecordDecode") if step["type"] == "RawFrameDecode" else step)
        test.type, test.pipeline = "VideoDataset", pipeline
        test.pop("filename_tmpl", None)
    return cfg


def mm_test_loop(cfg: Any, checkpoint: Path) -> tuple[list[Any], float]:
    """mmaction2 0.24.1's ``tools/test.py`` + ``single_gpu_test`` on CPU: probabilities per video, in list order,
    and the seconds of the loop over the videos (the rest is building the model, its weights and the dataset)."""
    import torch
    from mmaction.datasets import build_dataloader, build_dataset
    from mmaction.models import build_model
    from mmcv.runner import load_checkpoint

    cfg.model.backbone.pretrained = None
    model = build_model(cfg.model, train_cfg=None, test_cfg=cfg.get("test_cfg"))
    load_checkpoint(model, str(checkpoint), map_location="cpu")
    model.eval()
    dataset = build_dataset(cfg.data.test, dict(test_mode=True))
    loader = build_dataloader(
        dataset, videos_per_gpu=1, workers_per_gpu=cfg.data.get("workers_per_gpu", 1), dist=False, shuffle=False
    )
    results = []
    start = time.perf_counter()
    for data in loader:
        with torch.no_grad():
            results.extend(model(return_loss=False, imgs=data["imgs"]))
    return results, time.perf_counter() - start


def e2e_child(quick: bool, repeats: int) -> dict:
    import warnings

    import numpy as np

    np.int = int  # type: ignore[attr-defined]  # mmaction2 0.24.1 uses np.int, which numpy 1.24 removed
    warnings.filterwarnings("ignore")
    import mmaction
    import mmcv

    from slowonly_zoo.evaluation import verify

    sys.path.insert(0, str(REPO / "tests"))
    from upstream_checkpoints import write_upstream_checkpoint

    assert (mmcv.__version__, mmaction.__version__) == ("1.7.0", "0.24.1"), (mmcv.__file__, mmaction.__file__)
    videos = clips(quick)
    rounds = max(1, repeats - 1)
    results: dict[str, Any] = {"clips": [v.name for v in videos], "rounds": rounds, "rows": {}}
    print(
        f"\nend to end vs mmaction2 0.24.1's test loop (one process: mmaction2 {mmaction.__version__}, mmcv "
        f"{mmcv.__version__}, slowonly-zoo verify with its defaults), {len(videos)} real clip(s), {rounds} round(s)"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        counts = extract_frames(videos, tmp / "frames")
        lists = {"video": tmp / "videos.txt", "rawframes": tmp / "rawframes.txt"}
        lists["video"].write_text("".join(f"{v.name} 0\n" for v in videos))
        lists["rawframes"].write_text("".join(f"{stem} {n} 0\n" for stem, n in counts.items()))
        roots = {"video": VIDEOS, "rawframes": tmp / "frames"}
        runs = iter(range(10**6))
        for case in CASES:
            ckpt = write_upstream_checkpoint(tmp / "ckpt" / case.entry, case.entry, seed=0)
            cfg = _mm_test_config(case, lists[case.source_format], roots[case.source_format])
            scores: dict[str, Any] = {}
            loops: dict[str, list[float]] = {"mmaction2": [], "zoo": []}

            def theirs(case: Case = case, cfg: Any = cfg, ckpt: Path = ckpt) -> None:
                probs, seconds = mm_test_loop(copy.deepcopy(cfg), ckpt)
                scores["mmaction2"] = np.stack(probs)
                loops["mmaction2"].append(seconds)

            def ours(case: Case = case, ckpt: Path = ckpt) -> None:
                result = verify(
                    case.entry,
                    roots[case.source_format],
                    lists[case.source_format],
                    checkpoint=ckpt,
                    source_format=case.source_format,
                    out=tmp / f"verify{next(runs)}",
                    print_fn=None,
                    progress=False,
                )
                scores["zoo"] = result.table.scores
                loops["zoo"].append(result.seconds)

            times: dict[str, list[float]] = {"mmaction2": [], "zoo": []}
            impls: tuple[tuple[str, Callable[[], None]], ...] = (("mmaction2", theirs), ("zoo", ours))
            for _ in range(rounds):  # alternating, so drift on a shared machine hits both alike
                for impl, fn in impls:
                    start = time.perf_counter()
                    fn()
                    times[impl].append(time.perf_counter() - start)
            diff = np.abs(scores["mmaction2"] - scores["zoo"]).max(axis=1)
            top_mm, top_zoo = scores["mmaction2"].argmax(1).tolist(), scores["zoo"].argmax(1).tolist()
            print(row(f"end to end, {case.label}", min(times["mmaction2"]), min(times["zoo"])))
            print(
                f"    top-1 per video mmaction2 {top_mm}, slowonly-zoo {top_zoo}; "
                f"max |prob diff| per video {', '.join(f'{d:.1e}' for d in diff)}; of the time, the loop over "
                f"the videos (the rest: model, weights, dataset): mmaction2 {min(loops['mmaction2']):.2f} s, "
                f"slowonly-zoo {min(loops['zoo']):.2f} s"
            )
            results["rows"][case.label] = dict(
                times=times,
                loop_seconds=loops,
                videos_per_s={k: len(videos) / min(v) for k, v in times.items()},
                top1_mmaction2=top_mm,
                top1_zoo=top_zoo,
                max_prob_diff=diff.tolist(),
            )
            shutil.rmtree(tmp / "ckpt" / case.entry)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="the e2e section's child process (see benchmarks/run.py)")
    parser.add_argument("section", choices=("e2e",))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    results = e2e_child(args.quick, args.repeats)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
