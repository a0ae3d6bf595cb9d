#!/usr/bin/env python
"""Classify videos with a SlowOnly model from the zoo.

    python examples/classify_video.py slowonly_r50_8x8x1_k400 my_video.mp4
    python examples/classify_video.py slowonly_r50_8x8x1_k400 a.mp4 b.avi --clips 1          # fast: one view
    python examples/classify_video.py slowonly_r50_8x8x1_k400 a.mp4 --checkpoint file.pth   # local weights

By default every video goes through the model's own upstream test protocol (e.g. 10 clips x 3 crops), softmax
per view, mean over views; ``--clips N`` samples N clips with a single centre crop instead.
"""

from __future__ import annotations

import argparse
import json

from slowonly_zoo.inference import predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name, e.g. slowonly_r50_8x8x1_k400 (see `slowonly-zoo list`)")
    parser.add_argument("videos", nargs="+", help="video files or frame folders")
    parser.add_argument("--checkpoint", help="local .pth/.safetensors instead of the released weights")
    parser.add_argument("--topk", type=int, default=5, help="classes to print per video")
    parser.add_argument("--clips", type=int, help="N clips x 1 centre crop (default: the full test protocol)")
    parser.add_argument("--device", help="cpu / cuda (default: GPU if available)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    predictions = predict(
        args.model, args.videos, checkpoint=args.checkpoint, topk=args.topk, clips=args.clips, device=args.device
    )
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return 0
    for p in predictions:
        print(f"{p.video} ({p.num_views} view{'s' if p.num_views != 1 else ''})")
        for c in p.topk:
            print(f"  {c.prob:.4f}  {c.label}")
    return 0


if __name__ == "__main__":
    from slowonly_zoo.cli import run_script  # a user error is one line, not a traceback

    raise SystemExit(run_script(main))
