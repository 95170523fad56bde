"""Metrics and verdicts: losses, output distances, baselines, loss recovered.

    from metrics import evaluate, NextTokenLoss
    ev = evaluate(model, hypothesis, data, NextTokenLoss(), seeds=(0, 1, 2))
"""

from metrics.distances import DISTANCES, kl_divergence, kl_model_to_scrub, kl_scrub_to_model, l2_logits, l2_probs
from metrics.evaluate import Evaluation, evaluate, loss_recovered, model_baseline, random_baseline
from metrics.losses import ClassificationLoss, MSELoss, NextTokenLoss
from metrics.verdicts import VerdictRule

__all__ = [
    "evaluate", "Evaluation", "loss_recovered", "random_baseline", "model_baseline",
    "NextTokenLoss", "ClassificationLoss", "MSELoss",
    "DISTANCES", "kl_divergence", "kl_model_to_scrub", "kl_scrub_to_model", "l2_logits", "l2_probs",
    "VerdictRule",
]
