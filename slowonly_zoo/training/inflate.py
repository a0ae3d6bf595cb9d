"""ImageNet initialisation: inflate a torchvision ResNet-50 state dict into a SlowOnly model.

What mmaction2 0.24.1 does for ``backbone.pretrained='torchvision://resnet50'`` with ``pretrained2d=True``
(``ResNet3dPathway.inflate_weights`` in ``mmaction/models/backbones/resnet3d_slowfast.py``, the one
``ResNet3dSlowOnly`` inherits, with ``ResNet3d._inflate_bn_params`` from ``resnet3d.py``), for every conv+BN module
of the backbone:

* names: upstream ``conv1`` / ``layerS.B.convK`` take the 2D ``conv1`` / ``layerS.B.convK`` weight and the BN of the
  same name with ``conv`` replaced by ``bn`` (``bn1``, ``layerS.B.bnK``); ``layerS.B.downsample`` takes
  ``downsample.0`` (conv) and ``downsample.1`` (BN). Modules whose 2D name is absent (the non-local blocks) keep
  their initialisation.
* conv: ``weight_2d.unsqueeze(2).expand_as(weight_3d) / T`` (``T`` the temporal kernel size); a 3D conv with fewer
  input channels than the 2D one (the flow models' 2-channel stem) is skipped; more input channels are zero-padded.
* BN: weight and bias copied (the whole BN skipped if their shapes differ), then every buffer present in the 2D dict
  (``running_mean``, ``running_var``, ``num_batches_tracked``). The stem's BN is copied even when its conv is skipped.
* the head and every 2D key not used (``fc.*``) are left alone.

Unlike upstream, which only logs warnings, :func:`inflate_imagenet` returns an :class:`InflationReport` naming what
was inflated, what was skipped and why, and what kept its initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InflationError
from ..models.layers import ConvBN3d
from ..weights.convert import zoo_to_upstream

__all__ = ["InflationError", "InflationReport", "inflate_imagenet", "upstream_2d_names"]


@dataclass(frozen=True)
class InflationReport:
    """Outcome of :func:`inflate_imagenet`, in the model's state-dict keys (``backbone.`` prefix for a SlowOnly).

    Attributes:
        inflated: 3D conv weights set from a 2D kernel.
        copied: BN parameters and buffers copied from the 2D model.
        skipped: ``(key, reason)`` of tensors that had a 2D counterpart which could not be used (the flow stem).
        kept: model tensors with no 2D counterpart, left as initialised (non-local blocks, the head).
        unused_2d: keys of the 2D state dict that went nowhere (``fc.weight``, ``fc.bias``, a skipped stem conv).
    """

    inflated: tuple[str, ...]
    copied: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    kept: tuple[str, ...]
    unused_2d: tuple[str, ...]

    @property
    def loaded(self) -> tuple[str, ...]:
        """Every model key written from the 2D weights."""
        return self.inflated + self.copied

    def summary(self) -> str:
        """One line per fact, for logs."""
        lines = [f"inflated {len(self.inflated)} conv weights and copied {len(self.copied)} BN tensors from 2D"]
        lines += [f"skipped {key}: {reason}" for key, reason in self.skipped]
        if self.kept:
            lines.append(f"kept initialisation of {len(self.kept)} tensors with no 2D counterpart")
        if self.unused_2d:
            lines.append(f"unused 2D keys: {', '.join(self.unused_2d)}")
        return "\n".join(lines)


def upstream_2d_names(zoo_module: str) -> tuple[str, str]:
    """2D ``(conv, bn)`` module names upstream reads for the zoo backbone conv+BN module ``zoo_module``.

    E.g. ``stem`` -> ``(conv1, bn1)``, ``layer3.0.conv1`` -> ``(layer3.0.conv1, layer3.0.bn1)``,
    ``layer1.0.downsample`` -> ``(layer1.0.downsample.0, layer1.0.downsample.1)``.
    """
    key = next(iter(zoo_to_upstream({f"backbone.{zoo_module}.conv.weight": torch.empty(0)})))
    name = key.removeprefix("backbone.").removesuffix(".conv.weight")  # upstream ConvModule name
    if "downsample" in name:
        return name + ".0", name + ".1"
    return name, name.replace("conv", "bn")


def _backbone_and_prefix(model: nn.Module) -> tuple[nn.Module, str]:
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        return backbone, "backbone."
    return model, ""


def _inflate_conv(conv: nn.Conv3d, weight_2d: torch.Tensor) -> str | None:
    """Copy ``weight_2d`` inflated into ``conv``; returns why it was skipped, or None."""
    shape_3d = tuple(conv.weight.shape)
    shape_2d = tuple(weight_2d.shape)
    if len(shape_2d) != 4 or shape_2d[0] != shape_3d[0] or shape_2d[2:] != shape_3d[3:]:
        raise InflationError(
            f"a 2D kernel of shape {shape_2d} cannot inflate a 3D kernel of shape {shape_3d}; pass a torchvision "
            "ResNet-50 state dict"
        )
    if shape_3d[1] < shape_2d[1]:
        return f"2D kernel {shape_2d} has more input channels than the 3D kernel {shape_3d}"
    if shape_3d[1] > shape_2d[1]:
        pad = weight_2d.new_zeros((shape_2d[0], shape_3d[1] - shape_2d[1], *shape_2d[2:]))
        weight_2d = torch.cat((weight_2d, pad), dim=1)
    with torch.no_grad():
        conv.weight.copy_(weight_2d.unsqueeze(2).expand_as(conv.weight) / shape_3d[2])
    return None


def inflate_imagenet(resnet2d_state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> InflationReport:
    """Inflate torchvision ResNet-50 weights into ``model`` (a :class:`~slowonly_zoo.models.SlowOnly` or its
    backbone) in place, as mmaction2 0.24.1 does; see the module docstring. Returns what was done.
    """
    state_2d = resnet2d_state_dict
    if "state_dict" in state_2d and isinstance(state_2d["state_dict"], Mapping):
        state_2d = state_2d["state_dict"]
    backbone, prefix = _backbone_and_prefix(model)
    inflated: list[str] = []
    copied: list[str] = []
    skipped: list[tuple[str, str]] = []
    used_2d: set[str] = set()
    for name, module in backbone.named_modules():
        if not isinstance(module, ConvBN3d):
            continue
        conv_2d, bn_2d = upstream_2d_names(name)
        if f"{conv_2d}.weight" in state_2d:
            reason = _inflate_conv(module.conv, state_2d[f"{conv_2d}.weight"])
            if reason is None:
                inflated.append(f"{prefix}{name}.conv.weight")
                used_2d.add(f"{conv_2d}.weight")
            else:
                skipped.append((f"{prefix}{name}.conv.weight", f"{reason} ({conv_2d}.weight)"))
        if f"{bn_2d}.weight" in state_2d:
            copied += _copy_bn(module.bn, state_2d, bn_2d, f"{prefix}{name}.bn", used_2d, skipped)
    loaded = set(inflated) | set(copied) | {key for key, _ in skipped}
    kept = tuple(key for key in model.state_dict() if key not in loaded)
    unused = tuple(key for key in state_2d if key not in used_2d)
    if not inflated:
        raise InflationError(
            "no weight of the 2D state dict matched the model; pass a torchvision ResNet-50 state dict "
            "(keys like 'layer1.0.conv1.weight')"
        )
    return InflationReport(tuple(inflated), tuple(copied), tuple(skipped), kept, unused)


def _copy_bn(
    bn: nn.Module,
    state_2d: Mapping[str, torch.Tensor],
    name_2d: str,
    key_3d: str,
    used_2d: set[str],
    skipped: list[tuple[str, str]],
) -> list[str]:
    """Copy a 2D BN into ``bn`` (mmaction2's ``_inflate_bn_params``); returns the model keys written."""
    written: list[str] = []
    with torch.no_grad():
        for param_name, param in bn.named_parameters():
            value = state_2d[f"{name_2d}.{param_name}"]
            if tuple(param.shape) != tuple(value.shape):
                # upstream warns and stops here, keeping what it already copied
                skipped.append((f"{key_3d}.{param_name}", f"shape {tuple(value.shape)} in 2D vs {tuple(param.shape)}"))
                return written
            param.copy_(value)
            written.append(f"{key_3d}.{param_name}")
            used_2d.add(f"{name_2d}.{param_name}")
        for buffer_name, buffer in bn.named_buffers():
            key_2d = f"{name_2d}.{buffer_name}"
            if key_2d in state_2d:
                buffer.copy_(state_2d[key_2d])
                written.append(f"{key_3d}.{buffer_name}")
                used_2d.add(key_2d)
    return written
