"""Fitting a checkpoint's tensors to a model built with another head size or input channel count, before loading.

The model is always built at the requested size (its classifier and stem defined once, in
:mod:`slowonly_zoo.models`); the checkpoint's state dict is transformed to match and then loaded strictly. This is
the order timm 1.0 follows in ``timm/models/_builder.py`` ``load_pretrained``: adapt the first convolution's
kernel, drop a classifier of the wrong size, then load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

STEM_KERNEL = "backbone.stem.conv.weight"
"""The first convolution's kernel in this package's state-dict layout ((64, C, 1, 7, 7))."""

CLASSIFIER_KEYS = ("head.fc.weight", "head.fc.bias")
"""The classifier's tensors in this package's state-dict layout."""


@dataclass(frozen=True)
class Adaptation:
    """What :func:`fit_state_dict` changed: head sizes and input channel counts before and after."""

    from_classes: int
    to_classes: int
    from_chans: int
    to_chans: int

    @property
    def classifier_replaced(self) -> bool:
        return self.from_classes != self.to_classes

    @property
    def stem_adapted(self) -> bool:
        return self.from_chans != self.to_chans


def state_dict_num_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """The head size a zoo-layout state dict was saved with (0: no classifier)."""
    weight = state_dict.get(CLASSIFIER_KEYS[0])
    return int(weight.shape[0]) if weight is not None else 0


def state_dict_in_chans(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """The input channel count of a zoo-layout state dict's stem (None when it has no stem kernel)."""
    weight = state_dict.get(STEM_KERNEL)
    return int(weight.shape[1]) if weight is not None else None


def adapt_stem_kernel(stem_weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a (64, C, kT, kH, kW) stem kernel to ``in_chans`` input channels.

    Every new input channel gets the kernel summed over the old channels divided by ``in_chans``: the stem's
    response to an input that is the same on every channel is unchanged, whatever the two channel counts
    (RGB <-> flow <-> grey). Fine-tuning then learns the per-channel differences.
    """
    summed = stem_weight.sum(dim=1, keepdim=True) / in_chans
    return summed.expand(-1, in_chans, -1, -1, -1).contiguous()


def fit_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    target_state: Mapping[str, torch.Tensor],
    *,
    replace_classifier: bool,
    adapt_stem: bool,
) -> tuple[dict[str, torch.Tensor], Adaptation]:
    """The checkpoint's tensors transformed to the shapes of ``target_state`` (a freshly built model's state dict).

    With ``replace_classifier``, a classifier whose size differs from the target's is dropped and the target's
    own freshly initialised classifier tensors take its place (none when the target has no classifier). With
    ``adapt_stem``, a stem kernel with another input channel count is adapted by :func:`adapt_stem_kernel`.
    Nothing else changes, so loading the result strictly still reports every other mismatch.
    """
    fitted = dict(state_dict)
    from_classes, to_classes = state_dict_num_classes(state_dict), state_dict_num_classes(target_state)
    if replace_classifier and from_classes != to_classes:
        for key in CLASSIFIER_KEYS:
            fitted.pop(key, None)
            if key in target_state:
                fitted[key] = target_state[key]
    else:
        to_classes = from_classes
    from_chans, to_chans = state_dict_in_chans(state_dict), state_dict_in_chans(target_state)
    if adapt_stem and from_chans is not None and to_chans is not None and from_chans != to_chans:
        fitted[STEM_KERNEL] = adapt_stem_kernel(state_dict[STEM_KERNEL], to_chans)
    else:
        to_chans = from_chans
    return fitted, Adaptation(from_classes, to_classes, from_chans or 0, to_chans or 0)
