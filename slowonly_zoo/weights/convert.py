"""Key conversion between mmaction2's SlowOnly state-dict layout and this package's, and strict loading.

Upstream keys (fact sheet section 5) and ours differ only by these renames, applied to the whole key:

=====================================================  =============================================
upstream                                               slowonly_zoo
=====================================================  =============================================
``backbone.conv1.{conv,bn}.*``                         ``backbone.stem.{conv,bn}.*``
``backbone.layerS.B.non_local_block.{g,phi}.0.conv.*``  ``backbone.layerS.B.non_local.{g,phi}.*``
``backbone.layerS.B.non_local_block.theta.conv.*``      ``backbone.layerS.B.non_local.theta.*``
``backbone.layerS.B.non_local_block.conv_out.*``        ``backbone.layerS.B.non_local.conv_out.*``
``cls_head.fc_cls.*``                                  ``head.fc.*``
=====================================================  =============================================

Every other ``backbone.*`` key is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch import nn

from ..errors import CheckpointMismatchError

V = TypeVar("V")

CONVERTER_VERSION = "1"
"""Recorded with every converted file; bump it when the conversion's output changes."""

# (upstream pattern, zoo replacement) pairs; each key must match exactly one pattern.
_UPSTREAM_TO_ZOO: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^backbone\.conv1\.(conv|bn)\.(.+)$", r"backbone.stem.\1.\2"),
        (r"^backbone\.(layer\d+\.\d+)\.non_local_block\.(g|phi)\.0\.conv\.(.+)$", r"backbone.\1.non_local.\2.\3"),
        (r"^backbone\.(layer\d+\.\d+)\.non_local_block\.theta\.conv\.(.+)$", r"backbone.\1.non_local.theta.\2"),
        (
            r"^backbone\.(layer\d+\.\d+)\.non_local_block\.conv_out\.(conv|bn)\.(.+)$",
            r"backbone.\1.non_local.conv_out.\2.\3",
        ),
        (r"^backbone\.(layer\d+\.\d+\.(?:conv[123]|downsample)\.(?:conv|bn)\..+)$", r"backbone.\1"),
        (r"^cls_head\.fc_cls\.(weight|bias)$", r"head.fc.\1"),
    )
)

_ZOO_TO_UPSTREAM: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^backbone\.stem\.(conv|bn)\.(.+)$", r"backbone.conv1.\1.\2"),
        (
            r"^backbone\.(layer\d+\.\d+)\.non_local\.(g|phi)\.(weight|bias)$",
            r"backbone.\1.non_local_block.\2.0.conv.\3",
        ),
        (r"^backbone\.(layer\d+\.\d+)\.non_local\.theta\.(weight|bias)$", r"backbone.\1.non_local_block.theta.conv.\2"),
        (
            r"^backbone\.(layer\d+\.\d+)\.non_local\.conv_out\.(conv|bn)\.(.+)$",
            r"backbone.\1.non_local_block.conv_out.\2.\3",
        ),
        (r"^backbone\.(layer\d+\.\d+\.(?:conv[123]|downsample)\.(?:conv|bn)\..+)$", r"backbone.\1"),
        (r"^head\.fc\.(weight|bias)$", r"cls_head.fc_cls.\1"),
    )
)


def rename_keys(
    state_dict: Mapping[str, V], rename: Callable[[str], str | None], what: str, hint: str = ""
) -> dict[str, V]:
    """``state_dict`` with every key renamed by ``rename`` (None: a key that is not part of ``what``).

    Strict both ways: a key ``rename`` does not know, or two keys that map to one, is a
    :class:`~slowonly_zoo.errors.CheckpointMismatchError` naming them (``hint`` says what the file may be instead).
    """
    out: dict[str, V] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key is None:
            unknown.append(key)
        elif new_key in out:
            raise CheckpointMismatchError(f"two {what} keys map to {new_key} (the second is {key})")
        else:
            out[new_key] = value
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise CheckpointMismatchError(f"{len(unknown)} key(s) are not part of a {what} state dict: {shown}{hint}")
    return out


def _by_rules(rules: tuple[tuple[re.Pattern[str], str], ...]) -> Callable[[str], str | None]:
    """The renamer of the first rule whose pattern matches a key."""

    def rename(key: str) -> str | None:
        for pattern, replacement in rules:
            new_key, count = pattern.subn(replacement, key)
            if count:
                return new_key
        return None

    return rename


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a leading ``module.`` (DataParallel / DDP) from every key, as mmcv's loader does."""
    return {re.sub(r"^module\.", "", key): value for key, value in state_dict.items()}


def upstream_to_zoo(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an mmaction2 SlowOnly recognizer state dict (``backbone.*``, ``cls_head.*``) to this package's keys."""
    return rename_keys(strip_module_prefix(state_dict), _by_rules(_UPSTREAM_TO_ZOO), "SlowOnly mmaction2")


def zoo_to_upstream(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`upstream_to_zoo`: this package's keys back to mmaction2's."""
    return rename_keys(state_dict, _by_rules(_ZOO_TO_UPSTREAM), "SlowOnly slowonly_zoo")


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a zoo-layout state dict into ``model``; any missing, unexpected or mis-shaped key is an error."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mis_shaped = [
        f"{key} (checkpoint {tuple(state_dict[key].shape)}, model {tuple(expected[key].shape)})"
        for key in expected
        if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointMismatchError(
            "the checkpoint does not fit the model (is it for another SlowOnly variant?); " + "; ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)
