"""Verdicts: a stated rule turning an evaluation into plain words.

Default rule: a hypothesis survives when it recovers at least 90% of the loss
and its output stays within KL(model || scrubbed) <= 0.1 nats on average.
Both thresholds are settings of `VerdictRule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VerdictRule:
    min_loss_recovered: float = 0.9
    max_distance: float = 0.1
    distance: str = "kl"

    def judge(self, summary: dict) -> str:
        lr = summary["loss_recovered"]
        if math.isnan(lr):
            return "undefined: the model does no better than the random baseline"
        dist = summary.get(self.distance)
        if lr < self.min_loss_recovered:
            return f"rejected: recovers {lr:.0%} of the loss (needs {self.min_loss_recovered:.0%})"
        if dist is not None and dist > self.max_distance:
            return (f"flagged: loss preserved but function changed ({self.distance} {dist:.3g} > "
                    f"{self.max_distance:g})")
        return "survives"
