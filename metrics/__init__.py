"""Metrics and statistics: how far to trust a hypothesis.

    from metrics import evaluate, NextTokenLoss, VerdictRule
    ev = evaluate(model, hypothesis, data, NextTokenLoss(), seeds=(0, 1, 2))
    print(ev.estimate("loss_recovered"), VerdictRule().judge(ev))

`evaluate` / `evaluate_many` scrub with the baselines and keep per-(seed, datum)
values; `stats` gives bootstrap intervals; `VerdictRule` the verdict and flags;
`compare` ranks many hypotheses with Holm's correction; `cancel_out_report`
finds unexplained parts that cancel; `interchange_accuracy` tests how the
model fails.
"""

from metrics.cancel import CancelReport, Component, cancel_out_report, unexplained_components, with_restored
from metrics.compare import Ranking, compare, rank
from metrics.distances import DISTANCES, kl_divergence, kl_model_to_scrub, kl_scrub_to_model, l2_logits, l2_probs
from metrics.evaluate import Evaluation, evaluate, evaluate_many, loss_recovered, model_baseline, random_baseline
from metrics.iia import IIAResult, interchange_accuracy
from metrics.losses import ClassificationLoss, MSELoss, NextTokenLoss
from metrics.protocol import ComparisonMetric, OutputMetric, accuracy, agreement, distance, logit_diff
from metrics.stats import Estimate, estimate, holm
from metrics.verdicts import DatumCancellation, Verdict, VerdictRule

__all__ = [
    "evaluate", "evaluate_many", "Evaluation", "loss_recovered", "random_baseline", "model_baseline",
    "NextTokenLoss", "ClassificationLoss", "MSELoss",
    "OutputMetric", "ComparisonMetric", "accuracy", "logit_diff", "agreement", "distance",
    "DISTANCES", "kl_divergence", "kl_model_to_scrub", "kl_scrub_to_model", "l2_logits", "l2_probs",
    "Estimate", "estimate", "holm",
    "VerdictRule", "Verdict", "DatumCancellation",
    "compare", "rank", "Ranking",
    "cancel_out_report", "CancelReport", "Component", "unexplained_components", "with_restored",
    "interchange_accuracy", "IIAResult",
]
