"""What a scrub returns: outputs, the model's own outputs, and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from torch import Tensor

from scrub.compiler.plan import Plan

from hypotheses.nodes import Hypothesis


@dataclass
class ScrubResult:
    """One scrub of one hypothesis.

    scrubbed: y_scrub(x0) for each reference datum, `(N, pos, out)`.
    model:    the model's own outputs y_model(x0), same shape.
    reference: dataset indices of the reference data x0.
    roles:    indices drawn for each sampling role of the plan (replayable).
    metrics:  per-datum values of the metrics passed to `run`.
    """

    hypothesis: Hypothesis
    plan: Plan
    index: int  # this hypothesis' position among the plan's outputs
    seed: int
    reference: np.ndarray
    roles: dict[int, np.ndarray]
    scrubbed: Optional[Tensor]
    model: Optional[Tensor]
    metrics: dict[str, Tensor] = field(default_factory=dict)

    def node_indices(self) -> dict[str, dict]:
        """For every node: the dataset indices of its datum (`x`), of its
        other-inputs datum (`other`, if it has unclaimed inputs), under the
        independent policy of each unclaimed edge's draw (`other_edges`), and of
        a rewrite's own residual draw (`residual`)."""
        out = {}
        for name, nr in self.plan.nodes[self.index].items():
            entry = {"x": self.roles[nr.x]}
            if nr.other is not None:
                entry["other"] = self.roles[nr.other]
            if nr.other_edges:
                entry["other_edges"] = {edge: self.roles[r] for edge, r in nr.other_edges}
            if nr.residual is not None:
                entry["residual"] = self.roles[nr.residual]
            out[name] = entry
        return out

    def __repr__(self) -> str:
        shape = None if self.scrubbed is None else tuple(self.scrubbed.shape)
        return (f"ScrubResult({self.hypothesis.name!r}, seed={self.seed}, n={len(self.reference)}, "
                f"outputs={shape}, metrics={sorted(self.metrics)})")
