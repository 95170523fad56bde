"""Compare many hypotheses about one model: a ranked table with a multiple-testing correction.

Each hypothesis is tested for "loss recovered > threshold" with a one-sided
bootstrap p-value; Holm's step-down procedure adjusts the p-values so that the
chance of passing any hypothesis that does not clear the bar stays below
`alpha` for the whole family. `alpha=0.025` matches the lower bound of a 95%
interval that single verdicts use. A hypothesis survives the comparison when
its adjusted p-value is below alpha and its output distance passes the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from metrics.table import format_table

from metrics.evaluate import Evaluation, evaluate_many, loss_recovered
from metrics.stats import holm, p_value_above
from metrics.verdicts import Verdict, VerdictRule


@dataclass
class Ranked:
    rank: int
    evaluation: Evaluation
    verdict: Verdict
    p_value: float
    p_holm: float
    survives: bool

    def row(self, distance: str) -> list:
        lr = self.verdict.loss_recovered
        d = self.verdict.distance
        status = "survives" if self.survives else "rejected"
        notes = "; ".join(self.verdict.reasons + self.verdict.flags)
        return [self.rank, self.evaluation.name, lr.percent(), "-" if d is None else str(d),
                f"{self.p_holm:.3g}", status + (f" ({notes})" if notes else "")]


@dataclass
class Ranking:
    rows: list[Ranked]
    rule: VerdictRule
    alpha: float
    distance: str

    def table(self) -> str:
        header = ["rank", "hypothesis", "loss recovered [95% CI]", f"{self.distance} [95% CI]", "p (Holm)", "verdict"]
        return format_table([r.row(self.distance) for r in self.rows], header)

    def __str__(self) -> str:
        return (self.table() + f"\n\nrule: {self.rule.describe()}; family-wise: Holm-adjusted one-sided p < "
                f"{self.alpha} for loss recovered > {self.rule.min_loss_recovered:.0%}.")


def rank(evaluations: Sequence[Evaluation], rule: VerdictRule = VerdictRule(), alpha: float = 0.025) -> Ranking:
    verdicts = [rule.judge(ev) for ev in evaluations]
    threshold = rule.min_loss_recovered
    ps = [p_value_above([ev.random_loss, ev.scrub_loss, ev.model_loss], loss_recovered, threshold)
          for ev in evaluations]
    adjusted = holm(ps)
    order = sorted(range(len(evaluations)), key=lambda i: -_finite(evaluations[i].loss_recovered()))
    rows = [Ranked(k + 1, evaluations[i], verdicts[i], ps[i], adjusted[i],
                   adjusted[i] < alpha and verdicts[i].distance_ok)
            for k, i in enumerate(order)]
    name = rule.distance_for(evaluations[0])
    return Ranking(rows, rule, alpha, name)


def compare(model, hypotheses, data, loss, *, rule: VerdictRule = VerdictRule(), alpha: float = 0.025,
            **kw) -> Ranking:
    """Evaluate `hypotheses` together (one batched run per seed) and rank them."""
    return rank(evaluate_many(model, hypotheses, data, loss, **kw), rule, alpha)


def _finite(x: float) -> float:
    return x if x == x else float("-inf")
