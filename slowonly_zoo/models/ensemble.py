"""From the network's per-view outputs to one score vector per video, as the entry's test protocol says.

Two steps, both pure torch so that ``verify`` (slowonly_zoo/evaluation/runner.py) and ``predict``
(slowonly_zoo/inference.py) share them:

1. :func:`view_scores`: the protocol's per-view activation: softmax (mmaction2's ``average_clips='prob'``; FAIR's
   Kinetics and SSv2 heads) or sigmoid (FAIR's multi-label Charades head, ``MODEL.HEAD_ACT: sigmoid``). A
   ``'pyslowfast'`` head (slowonly_zoo/models/head.py) has already applied it at every window position in eval
   mode, so its outputs are used as they are: applying softmax a second time would flatten them.
2. :func:`combine_views`: mmaction2's mean over views, or PySlowFast's ``TEST.ENSEMBLE_METHOD`` (SlowFast
   ``slowfast/utils/meters.py`` ``TestMeter.update_stats``: ``'sum'`` adds the views' scores, ``'max'`` keeps the
   element-wise maximum). For ``'sum'`` the zoo reports the sum divided by the number of views, so scores stay in
   [0, 1] like every other entry's: a per-video constant factor, so top-k accuracy and average precision are the
   same as on FAIR's sums.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SCORE_ACTIVATIONS", "VIEW_ENSEMBLES", "combine_views", "outputs_probabilities", "view_scores"]

VIEW_ENSEMBLES: tuple[str, ...] = ("mean", "sum", "max")
SCORE_ACTIVATIONS: tuple[str, ...] = ("softmax", "sigmoid")


def outputs_probabilities(model: nn.Module) -> bool:
    """True when ``model``'s eval-mode outputs are already scores (a ``'pyslowfast'`` head), not logits.

    Looks at the model's head (also through a wrapper holding the model as ``.model``), else at the
    ``pretrained_cfg['outputs']`` that :func:`slowonly_zoo.create_model` records."""
    for candidate in (model, getattr(model, "model", None)):
        head = getattr(candidate, "head", None)
        if head is not None and hasattr(head, "outputs_probabilities"):
            return bool(head.outputs_probabilities)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("outputs") == "probabilities"


def view_scores(outputs: torch.Tensor, activation: str = "softmax", probabilities: bool = False) -> torch.Tensor:
    """Per-view scores ``(V, K)`` from the network's outputs ``(V, K)``: ``activation`` over the classes, unless
    the outputs already are ``probabilities`` (then returned as they are)."""
    if activation not in SCORE_ACTIVATIONS:
        raise ValueError(f"unknown score activation {activation!r}; choose one of {SCORE_ACTIVATIONS}")
    if probabilities:
        return outputs
    return torch.softmax(outputs, dim=-1) if activation == "softmax" else torch.sigmoid(outputs)


def combine_views(scores: torch.Tensor, ensemble: str = "mean") -> torch.Tensor:
    """One video's score vector ``(K,)`` from its per-view scores ``(V, K)``: the mean (``'mean'``, and ``'sum'``
    reported as sum / V, see the module docstring) or the element-wise maximum (``'max'``)."""
    if ensemble not in VIEW_ENSEMBLES:
        raise ValueError(f"unknown view ensemble {ensemble!r}; choose one of {VIEW_ENSEMBLES}")
    if ensemble == "max":
        return scores.max(dim=0).values
    return scores.mean(dim=0)
