"""Regenerate the README's timeline figure, ``docs/images/timeline.png``, deterministically and offline.

    python tools/readme_figures.py                 # writes docs/images/timeline.png (about a minute on 2 cores)
    python tools/readme_figures.py --out FILE.png

No released weights are used (none can be downloaded here), so the figure shows the mechanics, not a Kinetics
model's accuracy: two synthetic clips with the same two motions (a bar sweeping from side to side for the first half,
then a blob bobbing up and down) are generated with PyAV; a SlowOnly-R50 4x16 with random weights (seed 0) gets a
2-class head fitted by logistic regression on its pooled features of the first clip's windows (``extract
--clip-stride``), and :func:`slowonly_zoo.timeline.timeline` then runs it over the second clip (other seed, other
positions and sizes). The plot shows the predicted class switching halfway.

:func:`two_motion_clip` is also what ``tests/test_timeline.py`` decodes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MODEL = "slowonly_r50_4x16x1_k400_video"
CLASSES = ("bar sweeping sideways", "blob bobbing up and down")
STRIDE = 24  # frames between windows: a smoother curve than the default stride (64 for this model)
SECONDS = 8.0


def two_motion_clip(
    path: Path,
    *,
    fps: Fraction = Fraction(25),
    seconds: float = 10.0,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
) -> Path:
    """Write an MPEG-4 clip whose content changes halfway: a bright vertical bar sweeping from side to side over
    a dark background, then a bright square blob moving up and down. ``seed`` varies the speeds and starting
    positions. Returns ``path``; the clip has ``round(fps * seconds)`` frames."""
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    frames = round(fps * Fraction(seconds))
    half = frames // 2
    bar_w, blob, level, background = 6, 12, 230, 20
    periods = float(rng.uniform(1.5, 3.0))
    offset = float(rng.uniform(0.0, 1.0))
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.bit_rate = 400_000
        for i in range(frames):
            image = np.full((height, width, 3), background, dtype=np.uint8)
            if i < half:  # the bar sweeps from side to side
                sweep = (i / half * periods + offset) % 1.0
                x0 = int(abs(2 * sweep - 1) * (width - bar_w))
                image[:, x0 : x0 + bar_w] = level
            else:  # the blob bobs up and down in the middle
                phase = ((i - half) / (frames - half) * periods + offset) * 2 * np.pi
                cy = height / 2 + (height - blob) / 2 * np.sin(phase)
                mask = (np.abs(ys - cy) < blob / 2) & (np.abs(xs - width / 2) < blob / 2)
                image[mask] = level
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def fitted_model(train_clip: Path, work: Path):  # -> SlowOnly
    """SlowOnly-R50 4x16, random backbone (seed 0), with a 2-class head fitted on ``train_clip``'s windows."""
    import torch

    from slowonly_zoo import create_model
    from slowonly_zoo.features import extract

    torch.manual_seed(0)
    model = create_model(MODEL, pretrained=False, num_classes=len(CLASSES), class_names=CLASSES).eval()
    summary = extract(model, train_clip, work, clip_stride=STRIDE // 2, fmt="npy", device="cpu", progress=False)
    if summary.failed:
        raise RuntimeError(f"feature extraction failed: {summary.failed}")
    out = summary.written[0]
    feats = torch.from_numpy(np.load(out)).double()
    starts = np.load(out.with_name(f"{out.stem}.clip_starts.npy"))
    span = 3 * 16 + 1
    with __import__("av").open(str(train_clip)) as container:
        half = container.streams.video[0].frames // 2
    keep = (starts + span <= half) | (starts >= half)  # windows that do not straddle the change
    x, y = feats[keep], torch.from_numpy((starts[keep] >= half).astype(np.int64))
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / std
    fc = torch.nn.Linear(x.shape[1], len(CLASSES)).double()
    torch.nn.init.zeros_(fc.weight)
    torch.nn.init.zeros_(fc.bias)
    opt = torch.optim.LBFGS(fc.parameters(), max_iter=100)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(fc(xs), y) + 1e-2 * fc.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # fold the standardisation into the head: logits = W (x - mean) / std + b
        weight = fc.weight / std
        model.head.fc.weight.copy_(weight.float())
        model.head.fc.bias.copy_((fc.bias - weight @ mean).float())
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images" / "timeline.png")
    args = parser.parse_args(argv)
    import torch

    from slowonly_zoo.timeline import plot, timeline

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train = two_motion_clip(work / "train.mp4", seconds=SECONDS, seed=1)
        test = two_motion_clip(work / "two_motions.mp4", seconds=SECONDS, seed=2)
        model = fitted_model(train, work / "features")
        result = timeline(model, test, window_stride=STRIDE, topk=2, device="cpu", progress=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(result, args.out, top=2, size=(8.0, 2.8), dpi=100)
    for w in result.windows:
        print(f"{w.start:6.2f}-{w.end:6.2f} s  {w.topk[0].prob:.3f}  {w.topk[0].label}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
