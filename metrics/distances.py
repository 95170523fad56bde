"""Per-datum output distances: how far scrubbed outputs are from the model's own.

Distances compare y_scrub(x0) with y_model(x0), not with labels: a hypothesis
can recover all the loss while computing a different function, and only a
distance shows it. Each is averaged over the positions a loss reads. Every
distance is registered once, in `DISTANCES` (name -> fn(scrubbed, model,
weights)); spec files, verdict rules and the docs read its names from there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hypotheses.registry import Registry

DISTANCES: Registry = Registry("distance")


def _weighted(fn):
    """Apply a per-position distance only at the (datum, position) pairs with non-zero weight, then
    average per datum with the weights: positions no loss reads cost nothing."""
    def wrapped(a: Tensor, b: Tensor, weights: Tensor) -> Tensor:
        rows, cols = weights.nonzero(as_tuple=True)
        per = fn(a[rows, cols].float(), b[rows, cols].float())  # (number of weighted pairs,)
        w = weights[rows, cols].to(per.dtype)
        total = torch.zeros(len(weights), dtype=per.dtype, device=per.device).index_add_(0, rows, per * w)
        return total / weights.sum(-1).to(per.dtype).clamp_min(1e-12)
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    lp, lq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)


@_weighted
def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p || q) per datum, from logits `(N, pos, out)`."""
    return _kl(p_logits, q_logits)


@DISTANCES.register("kl")
def kl_model_to_scrub(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """KL(model || scrubbed): information lost when the scrubbed output stands in for the model's."""
    return kl_divergence(model, scrubbed, weights)


@DISTANCES.register("kl_reverse")
def kl_scrub_to_model(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """KL(scrubbed || model): the reverse direction (large where scrubbing is confident and wrong)."""
    return kl_divergence(scrubbed, model, weights)


@DISTANCES.register("l2_logits")
@_weighted
def l2_logits(scrubbed: Tensor, model: Tensor) -> Tensor:
    """Euclidean distance of the logit vectors (raw outputs for regression)."""
    return (scrubbed - model).norm(dim=-1)


@DISTANCES.register("l2_probs")
@_weighted
def l2_probs(scrubbed: Tensor, model: Tensor) -> Tensor:
    """Euclidean distance of the output distributions."""
    return (scrubbed.softmax(-1) - model.softmax(-1)).norm(dim=-1)

