#!/usr/bin/env python
"""Fine-tune a SlowOnly model on your own classes: a folder with one sub-folder of videos per class.

    data/
      juggling/   a.mp4 b.mp4 ...
      unicycling/ c.mp4 ...

    python examples/finetune_folder.py slowonly_r50_8x8x1_k400 data/ --out finetuned/ --epochs 10
    python examples/finetune_folder.py slowonly_r50_8x8x1_k400 data/ --out ft/ --checkpoint file.pth --val-root val/

A short call of the trainer (``slowonly_zoo.training.fit``, what ``slowonly-zoo train`` runs): the model's
upstream train recipe (``slowonly-zoo info NAME`` shows it: SGD, lr schedule, RandomResizedCrop + flip, gradient
clipping, ...) starting from the model's released weights (or ``--checkpoint``), with its classifier replaced by a
new one for your classes. The lr defaults to the recipe's, scaled linearly to your batch. BatchNorm statistics
stay frozen (small batches; ``--train-bn`` updates them as upstream does). ``--size``, ``--crop``, ``--clip-len``
and ``--frame-interval`` change the recipe's input (e.g. tiny inputs on a CPU).

The work dir ``<out>`` holds what the trainer writes: ``epoch_N.safetensors`` / ``.pth`` (the weights with your
class names and head size), ``best.safetensors``, ``latest.pt`` to resume, ``log.jsonl`` (``slowonly-zoo plot-log
<out>/log.jsonl --out curves.png``). Reload the final weights, head and class names included, with::

    model = slowonly_zoo.create_model(name, checkpoint_path="<out>/epoch_N.safetensors")

or predict with them: ``slowonly-zoo predict NAME clip.mp4 --checkpoint <out>/epoch_N.safetensors``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from slowonly_zoo import create_model, get_model_info
from slowonly_zoo.training import fit


def recipe_for(entry, args):
    """The entry's train recipe with the input sizes given on the command line."""
    recipe = entry.train_recipe
    sampling = dataclasses.replace(
        recipe.sampling,
        clip_len=args.clip_len or recipe.sampling.clip_len,
        frame_interval=args.frame_interval or recipe.sampling.frame_interval,
    )
    size, crop = args.size or recipe.resize_short, args.crop or recipe.out_size
    val = dataclasses.replace(recipe.val, resize_short=size, crop_size=crop)
    return dataclasses.replace(recipe, sampling=sampling, resize_short=size, out_size=crop, val=val)


def epoch_lines(log_file: Path) -> list[str]:
    """'epoch N: train loss L acc A, val top-1 T' per epoch, from the trainer's log.jsonl."""
    train, val = {}, {}
    for line in log_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        (train if record["mode"] == "train" else val)[record["epoch"]] = record  # the epoch's last record
    lines = []
    for epoch in sorted(train):
        text = f"epoch {epoch}: train loss {train[epoch]['loss']:.4f} acc {train[epoch]['top1_acc']:.3f}"
        if epoch in val:
            text += f", val top-1 {val[epoch]['top1_acc']:.3f}"
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name, e.g. slowonly_r50_8x8x1_k400 (an RGB model)")
    parser.add_argument("root", type=Path, help="folder with one sub-folder of videos per class")
    parser.add_argument("--val-root", type=Path, help="validation folder with the same class sub-folders")
    parser.add_argument("--out", type=Path, required=True, help="the work dir (checkpoints, log, model.safetensors)")
    parser.add_argument("--checkpoint", help="start from this .pth/.safetensors instead of the released weights")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8, help="clips per step (default 8)")
    parser.add_argument("--lr", type=float, help="default: the recipe's lr scaled linearly to --batch-size")
    parser.add_argument("--size", type=int, help="training short side (default: the recipe's, 256)")
    parser.add_argument("--crop", type=int, help="training crop (default: the recipe's, 224)")
    parser.add_argument("--clip-len", type=int, help="frames per clip (default: the model's)")
    parser.add_argument("--frame-interval", type=int, help="frame step (default: the model's)")
    parser.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics (upstream does)")
    parser.add_argument("--amp", action="store_true", help="mixed precision on a GPU")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the GPU if there is one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    entry = get_model_info(args.model)
    if entry.architecture is None or entry.architecture.modality != "rgb":
        raise SystemExit(f"{entry.name} is not an RGB model; pick one from `slowonly-zoo list --modality rgb`")
    result = fit(
        name=entry.name,
        data_root=args.root,  # no ann_file: one sub-folder per class
        val_ann_file=args.val_root,
        val_data_root=args.val_root,
        work_dir=args.out,
        init=args.checkpoint or entry.name,
        recipe=recipe_for(entry, args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_interval=1,
        save_interval=args.epochs,
        freeze_bn=not args.train_bn,
        amp=args.amp,
        num_workers=args.workers,
        device=args.device,
        seed=args.seed,
        progress=False,
    )
    print("\n".join(epoch_lines(args.out / "log.jsonl")), flush=True)

    # Reload the final checkpoint the way a user would: head size and class names come from the file.
    final = args.out / f"epoch_{result.epochs_done}.safetensors"
    reloaded = create_model(entry.name, checkpoint_path=final, device="cpu")
    print(f"{final}: {reloaded.num_classes} classes {list(reloaded.pretrained_cfg['label_names'] or ())}")
    frames = args.clip_len or entry.architecture.clip_len
    x = torch.randn(1, 3, frames, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        same = torch.equal(result.model.eval().cpu().float()(x), reloaded(x))
    print(f"reloaded model gives identical logits: {same}")
    return 0 if same and reloaded.pretrained_cfg["label_names"] == result.class_names else 1


if __name__ == "__main__":
    from slowonly_zoo.cli import run_script  # a user error is one line, not a traceback

    raise SystemExit(run_script(main))
