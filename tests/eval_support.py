"""Small stand-ins shared by the evaluation tests (no tests here): a tiny video classifier and a list-backed dataset
whose items look like ``slowonly_zoo.data``'s ``Sample`` (id, label, views, error)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 7
VIEWS = 3
SHAPE = (3, 2, 8, 8)  # C, T, H, W of one view


class TinyVideoNet(nn.Module):
    """(N, 3, T, H, W) -> (N, NUM_CLASSES) logits; deterministic for a seed."""

    def __init__(self, seed: int = 0, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv3d(3, 6, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.fc = nn.Linear(6, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


@dataclass
class FakeSample:
    id: str
    label: int
    views: np.ndarray | None
    error: str | None = None


def video_views(index: int, views: int = VIEWS) -> np.ndarray:
    """The deterministic float32 views of video ``index``."""
    rng = np.random.default_rng(1000 + index)
    return rng.standard_normal((views, *SHAPE)).astype(np.float32)


class ListDataset:
    """``n`` videos ``vid{i}.mp4`` with label ``i % NUM_CLASSES``; ``bad`` maps an index to an error string (or to
    ``"raise"``, which makes ``__getitem__`` raise); ``delay`` seconds of sleep per item emulate decoding."""

    def __init__(self, n: int, bad: dict[int, str] | None = None, delay: float = 0.0, views: int = VIEWS) -> None:
        self.n = n
        self.bad = dict(bad or {})
        self.delay = delay
        self.views = views

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> FakeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        if self.delay:
            time.sleep(self.delay)
        reason = self.bad.get(i)
        if reason == "raise":
            raise OSError(f"cannot open vid{i}.mp4")
        if reason is not None:
            return FakeSample(f"vid{i}.mp4", i % NUM_CLASSES, None, reason)
        return FakeSample(f"vid{i}.mp4", i % NUM_CLASSES, video_views(i, self.views))


def reference_probs(model: nn.Module, indices: list[int], views: int = VIEWS) -> np.ndarray:
    """Upstream's average_clips='prob' for each video, one video per forward pass."""
    out = []
    with torch.no_grad():
        model.eval()
        for i in indices:
            logits = model(torch.from_numpy(video_views(i, views)))
            out.append(torch.softmax(logits, dim=1).mean(dim=0).numpy())
    return np.stack(out)
