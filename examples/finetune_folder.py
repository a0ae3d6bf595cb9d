#!/usr/bin/env python
"""Fine-tune a SlowOnly model on your own classes: a folder with one sub-folder of videos per class.

    data/
      juggling/   a.mp4 b.mp4 ...
      unicycling/ c.mp4 ...

    python examples/finetune_folder.py slowonly_r50_8x8x1_k400 data/ --out finetuned/ --epochs 10
    python examples/finetune_folder.py slowonly_r50_8x8x1_k400 data/ --out ft/ --checkpoint file.pth --freeze-backbone

The network comes from ``create_model(name, pretrained=True, num_classes=K)`` (or ``checkpoint_path=``): every
pretrained weight is loaded, the classifier is replaced by a new K-way one. Training clips are sampled at a random
position (the model's clip length and frame interval), the short side resized to ``--size``, randomly cropped to
``--crop`` and flipped, and normalised as the model's test protocol says. BatchNorm statistics stay frozen (small
batches), ``--freeze-backbone`` trains only the classifier (fast, even on a CPU).

Writes ``<out>/model.safetensors`` (zoo layout) and ``<out>/labels.txt``; reload with::

    model = slowonly_zoo.create_model(name, num_classes=K)
    model.load_state_dict(safetensors.torch.load_file("<out>/model.safetensors"))
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slowonly_zoo import create_model, get_model_info
from slowonly_zoo.data.decode import VideoFile
from slowonly_zoo.data.transforms import normalize_rgb, resize_linear, resize_short_side_size
from slowonly_zoo.inference import VIDEO_EXTENSIONS


def find_videos(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(video, label) pairs and the class names (sorted sub-folder names) of a folder-per-class dataset."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = [
        (f, k)
        for k, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in VIDEO_EXTENSIONS
    ]
    if len(classes) < 2 or not items:
        raise SystemExit(f"{root} needs at least two class sub-folders holding videos")
    return items, classes


class ClipDataset(Dataset):
    """One clip per video and epoch: random position, crop and flip when training; centred otherwise."""

    def __init__(self, items, clip_len, interval, size, crop, mean, std, train):
        self.items, self.clip_len, self.interval = items, clip_len, interval
        self.size, self.crop, self.mean, self.std, self.train = size, crop, mean, std, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        with VideoFile(path) as video:
            total = len(video)
            span = (self.clip_len - 1) * self.interval + 1
            slack = max(total - span, 0)
            start = random.randint(0, slack) if self.train else slack // 2
            frames = torch.from_numpy(video.read((start + np.arange(self.clip_len) * self.interval) % total))
        frames = resize_linear(frames, resize_short_side_size(frames.shape[1], frames.shape[2], self.size))
        h, w = frames.shape[1:3]
        top = random.randint(0, h - self.crop) if self.train else (h - self.crop) // 2
        left = random.randint(0, w - self.crop) if self.train else (w - self.crop) // 2
        frames = frames[:, top : top + self.crop, left : left + self.crop]
        if self.train and random.random() < 0.5:
            frames = frames.flip(2)
        x = normalize_rgb(frames, self.mean, self.std)  # (T, H, W, C) float32
        return x.permute(3, 0, 1, 2).contiguous(), label


def run_epoch(model, loader, device, optimizer=None):
    """Mean loss and accuracy over ``loader``; trains when an optimizer is given."""
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with torch.set_grad_enabled(optimizer is not None):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return total_loss / seen, correct / seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name, e.g. slowonly_r50_8x8x1_k400 (an RGB model)")
    parser.add_argument("root", type=Path, help="folder with one sub-folder of videos per class")
    parser.add_argument("--val-root", type=Path, help="validation folder with the same class sub-folders")
    parser.add_argument("--out", type=Path, required=True, help="where model.safetensors and labels.txt go")
    parser.add_argument("--checkpoint", help="start from this .pth/.safetensors instead of the released weights")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--size", type=int, default=256, help="training short side (default 256)")
    parser.add_argument("--crop", type=int, default=224, help="training crop (default 224)")
    parser.add_argument("--clip-len", type=int, help="frames per clip (default: the model's)")
    parser.add_argument("--frame-interval", type=int, help="frame step (default: the model's)")
    parser.add_argument("--freeze-backbone", action="store_true", help="train the classifier only")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    entry = get_model_info(args.model)
    if entry.architecture is None or entry.architecture.modality != "rgb":
        raise SystemExit(f"{entry.name} is not an RGB model; pick one from `slowonly-zoo list --modality rgb`")
    train_items, classes = find_videos(args.root)
    val_items = find_videos(args.val_root)[0] if args.val_root else []

    model = create_model(
        entry.name,
        pretrained=args.checkpoint is None,
        checkpoint_path=args.checkpoint,
        num_classes=len(classes),
        device=args.device,
    )
    if args.freeze_backbone:
        model.backbone.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)

    p, a = entry.protocol, entry.architecture
    clip_len, interval = args.clip_len or a.clip_len, args.frame_interval or a.frame_interval
    make = lambda items, train: DataLoader(  # noqa: E731
        ClipDataset(items, clip_len, interval, args.size, args.crop, p.mean, p.std, train),
        batch_size=args.batch_size,
        shuffle=train,
        num_workers=args.workers,
    )
    train_loader = make(train_items, True)
    val_loader = make(val_items, False) if val_items else None
    print(
        f"{entry.name}: {len(train_items)} training videos, {len(classes)} classes {classes}, "
        f"clips {clip_len}x{interval} at {args.crop}px, {sum(x.numel() for x in params):,} trainable parameters"
    )

    for epoch in range(1, args.epochs + 1):
        model.train()
        for m in model.modules():  # frozen BN statistics: batches are small
            if isinstance(m, nn.BatchNorm3d):
                m.eval()
        loss, acc = run_epoch(model, train_loader, args.device, optimizer)
        line = f"epoch {epoch}: train loss {loss:.4f} acc {acc:.3f}"
        if val_loader is not None:
            model.eval()
            val_loss, val_acc = run_epoch(model, val_loader, args.device)
            line += f", val loss {val_loss:.4f} acc {val_acc:.3f}"
        print(line, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(
        state, str(args.out / "model.safetensors"), metadata={"base_model": entry.name, "classes": ",".join(classes)}
    )
    (args.out / "labels.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")

    # Reload the way a user would and check it predicts exactly what the trained model does.
    reloaded = create_model(entry.name, num_classes=len(classes), device=args.device)
    reloaded.load_state_dict(load_file(str(args.out / "model.safetensors")))
    x, _ = next(iter(make(train_items[:1], False)))
    with torch.inference_mode():
        same = torch.equal(model(x.to(args.device)), reloaded(x.to(args.device)))
    print(f"saved {args.out / 'model.safetensors'} and labels.txt; reloaded model gives identical logits: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
