#!/usr/bin/env python
"""Export a SlowOnly model to TorchScript and check that the exported model gives the eager model's outputs.

    python examples/export_torchscript.py slowonly_r50_8x8x1_k400 --out slowonly.pt
    python examples/export_torchscript.py slowonly_r50_8x8x1_k400 --checkpoint file.pth --out slowonly.pt

The model is traced on one input of the protocol's view shape (1, C, T, crop, crop); the traced module accepts
any batch size. Load it anywhere with ``torch.jit.load("slowonly.pt")`` (no slowonly-zoo needed); inputs must be
normalised as the model's test protocol says (``slowonly-zoo info NAME``). ``--random`` exports random weights
(to try the export without downloading anything).
"""

from __future__ import annotations

import argparse

import torch

from slowonly_zoo import create_model, get_model_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name, e.g. slowonly_r50_8x8x1_k400")
    parser.add_argument("--out", required=True, help="output .pt file")
    parser.add_argument("--checkpoint", help="local .pth/.safetensors instead of the released weights")
    parser.add_argument("--random", action="store_true", help="random weights (no download)")
    parser.add_argument("--size", type=int, help="spatial size of the example input (default: the protocol's crop)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest accepted |exported - eager| on logits")
    args = parser.parse_args(argv)

    entry = get_model_info(args.model)
    model = create_model(
        entry.name, pretrained=not args.random and args.checkpoint is None, checkpoint_path=args.checkpoint
    ).eval()
    size = args.size or entry.protocol.crop_size
    example = torch.randn(
        1,
        entry.architecture.in_channels,
        entry.architecture.clip_len,
        size,
        size,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.inference_mode():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(args.out)

    loaded = torch.jit.load(args.out)
    check = torch.randn(2, *example.shape[1:], generator=torch.Generator().manual_seed(1))  # another batch size
    with torch.inference_mode():
        eager, exported = model(check), loaded(check)
    diff = (eager - exported).abs().max().item()
    same_top1 = bool((eager.argmax(1) == exported.argmax(1)).all())
    print(
        f"exported {entry.name} to {args.out}; max |exported - eager| = {diff:.3g} on logits of shape "
        f"{tuple(eager.shape)}, same top-1: {same_top1}"
    )
    if diff > args.atol or not same_top1:
        print(f"MISMATCH: the exported model differs from eager by more than {args.atol}")
        return 1
    return 0


if __name__ == "__main__":
    from slowonly_zoo.cli import run_script  # a user error is one line, not a traceback

    raise SystemExit(run_script(main))
