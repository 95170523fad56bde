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
    rule: VerdictRule = VerdictRule()  # the rule this hypothesis was judged and tested by

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


def rank(evaluations: Sequence[Evaluation], rule: VerdictRule | Sequence[VerdictRule] = VerdictRule(),
         alpha: float = 0.025) -> Ranking:
    """Rank by loss recovered; Holm over the whole family. `rule` may be one rule per evaluation (a sweep
    whose points set their own thresholds): each is tested against its own threshold, and the Ranking's
    `rule` is then the first."""
    rules = [rule] * len(evaluations) if isinstance(rule, VerdictRule) else list(rule)
    if len(rules) != len(evaluations):
        raise ValueError(f"rank: {len(rules)} rules for {len(evaluations)} evaluations; give one rule or one each.")
    verdicts = [r.judge(ev) for r, ev in zip(rules, evaluations)]
    ps = [p_value_above([ev.random_loss, ev.scrub_loss, ev.model_loss], loss_recovered, r.min_loss_recovered)
          for r, ev in zip(rules, evaluations)]
    adjusted = holm(ps)
    order = sorted(range(len(evaluations)), key=lambda i: -_finite(evaluations[i].loss_recovered()))
    rows = [Ranked(k + 1, evaluations[i], verdicts[i], ps[i], adjusted[i],
                   adjusted[i] < alpha and verdicts[i].distance_ok, rules[i])
            for k, i in enumerate(order)]
    name = rules[0].distance_for(evaluations[0])
    return Ranking(rows, rules[0], alpha, name)


def compare(model, hypotheses, data, loss, *, rule: VerdictRule = VerdictRule(), alpha: float = 0.025,
            **kw) -> Ranking:
    """Evaluate `hypotheses` together (one batched run per seed) and rank them."""
    return rank(evaluate_many(model, hypotheses, data, loss, **kw), rule, alpha)


def _finite(x: float) -> float:
    return x if x == x else float("-inf")
