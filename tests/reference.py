"""mmaction2 (from PyPI) as the numerical reference for the tests. Never imported by the package itself.

mmaction2 1.2.0's wheel lacks ``mmaction/models/localizers/drn`` (open-mmlab/mmaction2#2714), so importing
``mmaction.models`` fails; a placeholder module stands in for it (DRN has nothing to do with SlowOnly), and only
when the real one is missing.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

import torch


def import_mmaction():
    """Import mmaction2 1.x with the DRN workaround; returns the ``mmaction`` package."""
    if "mmaction.models.localizers.drn" not in sys.modules:
        try:
            spec = importlib.util.find_spec("mmaction.models.localizers.drn")
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            placeholder = types.ModuleType("mmaction.models.localizers.drn")
            placeholder.__path__ = []  # a package, so "from .drn.drn import DRN" can resolve
            drn = types.ModuleType("mmaction.models.localizers.drn.drn")

            class DRN(torch.nn.Module):  # never built by these tests
                pass

            drn.DRN = DRN
            placeholder.DRN = DRN
            sys.modules["mmaction.models.localizers.drn"] = placeholder
            sys.modules["mmaction.models.localizers.drn.drn"] = drn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmaction
        import mmaction.models
        from mmaction.utils import register_all_modules

        register_all_modules(init_default_scope=True)
    return mmaction


def build_mmaction_recognizer(
    depth: int = 50,
    num_classes: int = 400,
    in_channels: int = 3,
    non_local: bool = False,
    with_pool1: bool = True,
) -> torch.nn.Module:
    """Build mmaction2's own SlowOnly recognizer (backbone ``ResNet3dSlowOnly`` + ``I3DHead``) in eval mode."""
    import_mmaction()
    from mmaction.registry import MODELS

    backbone = dict(
        type="ResNet3dSlowOnly",
        depth=depth,
        pretrained=None,
        lateral=False,
        conv1_kernel=(1, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        inflate=(0, 0, 1, 1),
        norm_eval=False,
        in_channels=in_channels,
        with_pool1=with_pool1,
    )
    if non_local:
        backbone.update(
            non_local=((0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 0, 0)),
            non_local_cfg=dict(
                sub_sample=True,
                use_scale=True,
                norm_cfg=dict(type="BN3d", requires_grad=True),
                mode="embedded_gaussian",
            ),
        )
    cfg = dict(
        type="Recognizer3D",
        backbone=backbone,
        cls_head=dict(
            type="I3DHead",
            in_channels=2048,
            num_classes=num_classes,
            spatial_type="avg",
            dropout_ratio=0.5,
            average_clips="prob",
        ),
        data_preprocessor=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS.build(cfg)
    return model.eval()


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic a random, well-scaled value (in place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("bn.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5)
            else:  # conv / linear weights: He-like scale keeps activations O(1) through 50-101 layers
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
    return model


def mmaction_logits(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run mmaction2's backbone and head on (N, C, T, H, W): returns (features, logits)."""
    with torch.no_grad():
        feats = model.backbone(x)
        logits = model.cls_head(feats)
    return feats, logits
