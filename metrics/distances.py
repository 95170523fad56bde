"""Per-datum output distances: how far scrubbed outputs are from the model's own.

Distances compare y_scrub(x0) with y_model(x0), not with labels: a hypothesis
can recover all the loss while computing a different function, and only a
distance shows it. Each is averaged over the positions a loss reads.
"""

from __future__ import annotations

from torch import Tensor


def _mean_over(values: Tensor, weights: Tensor) -> Tensor:
    return (values * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)


def kl_divergence(p_logits: Tensor, q_logits: Tensor, weights: Tensor) -> Tensor:
    """KL(p || q) per datum, from logits `(N, pos, out)`."""
    lp = p_logits.float().log_softmax(-1)
    lq = q_logits.float().log_softmax(-1)
    kl = (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)
    return _mean_over(kl, weights)


def kl_model_to_scrub(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """KL(model || scrubbed): information lost when the scrubbed output stands in for the model's."""
    return kl_divergence(model, scrubbed, weights)


def kl_scrub_to_model(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """KL(scrubbed || model): the reverse direction (large where scrubbing is confident and wrong)."""
    return kl_divergence(scrubbed, model, weights)


def l2_logits(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """Euclidean distance of the logit vectors (raw outputs for regression)."""
    return _mean_over((scrubbed.float() - model.float()).norm(dim=-1), weights)


def l2_probs(scrubbed: Tensor, model: Tensor, weights: Tensor) -> Tensor:
    """Euclidean distance of the output distributions."""
    return _mean_over((scrubbed.float().softmax(-1) - model.float().softmax(-1)).norm(dim=-1), weights)


DISTANCES = {"kl": kl_model_to_scrub, "kl_reverse": kl_scrub_to_model, "l2_logits": l2_logits, "l2_probs": l2_probs}
