#!/usr/bin/env python
"""Extract SlowOnly features for every video in a folder, then compare the videos by cosine similarity.

    python examples/extract_features.py slowonly_r50_8x8x1_k400 videos/ --out features/
    python examples/extract_features.py slowonly_r50_8x8x1_k400 videos/ --out feats/ --clip-stride 16  # per clip

Each video gets ``<out>/<name>.safetensors`` holding ``features``: the pooled 2048-d embedding averaged over the
test views, or with ``--clip-stride`` one row per sliding-window clip (plus ``clip_starts``). Rerunning skips
videos already done. For many videos and GPUs: ``torchrun --nproc_per_node=8 examples/extract_features.py ...``
(each rank takes every 8th video).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from slowonly_zoo.features import extract
from slowonly_zoo.inputs import expand_inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name, e.g. slowonly_r50_8x8x1_k400")
    parser.add_argument("inputs", nargs="+", help="a folder of videos, video files, or a .txt list")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--checkpoint", help="local .pth/.safetensors instead of the released weights")
    parser.add_argument("--clips", type=int, help="N clips x 1 centre crop (default: the full test protocol)")
    parser.add_argument("--clip-stride", type=int, help="one feature per clip starting every S frames")
    parser.add_argument("--device", help="cpu / cuda (default: GPU if available)")
    args = parser.parse_args(argv)

    videos = expand_inputs(args.inputs)
    summary = extract(
        args.model,
        videos,
        args.out,
        checkpoint=args.checkpoint,
        clips=args.clips,
        clip_stride=args.clip_stride,
        device=args.device,
    )
    print(f"{len(summary.written)} written, {len(summary.skipped)} already there, {len(summary.failed)} failed")
    for video, reason in summary.failed:
        print(f"  failed {video}: {reason}")

    files = sorted(Path(args.out).rglob("*.safetensors"))
    if summary.world_size > 1 or len(files) < 2:
        return 1 if summary.failed else 0
    # One vector per video (mean over clips when per-clip), L2-normalised, then all pairwise cosine similarities.
    feats = torch.stack([load_file(str(f))["features"].reshape(-1, 2048).mean(0) for f in files])
    feats = torch.nn.functional.normalize(feats, dim=1)
    sim = feats @ feats.T
    names = [f.stem for f in files]
    print("cosine similarity")
    for name, row in zip(names, sim.tolist()):
        print(f"  {name[:24]:<24} " + " ".join(f"{v:5.2f}" for v in row))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    from slowonly_zoo.cli import run_script  # a user error is one line, not a traceback

    raise SystemExit(run_script(main))
