"""The independent-draw check: every evaluation also scores each hypothesis with its unexplained inputs
drawn independently, and the verdict says when that is far worse.

Under the shared draw (the default policy), everything a node leaves
unexplained is computed on one other-inputs datum r, so parts that cancel
(b(r) - c(r)) vanish together and a wrong hypothesis can pass. Drawn
independently (b(r1) - c(r2)) they do not. The check is one more variant per
hypothesis in the evaluation's stacked pass: the hypothesis with every node
under the independent policy.

Fresh draws would cost one forward pass per unexplained edge (thousands in
GPT-2 small), so the check takes each edge's datum from the shared draws of
*other* reference data: edge k of a node uses r of the reference datum k
places further on in its block of `BLOCK` reference data (a ROLL role,
`scrub.compiler.plan`). For the default, unconditional, other-inputs sampler
that is a draw from the same distribution, independent of the datum and of the
node's other edges, and its values are the shared draw's values with rows
reordered: no forward pass is added. A node with more than `BLOCK - 1` edges
gives edges k and k + BLOCK - 1 the same datum. A node whose other-inputs
sampler conditions on its datum (agree on a feature) cannot borrow another
datum's draw; its edges keep fresh draws, which cost a pass each, and the
check is skipped when there are more than `MAX_FRESH` of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from torch import Tensor

from scrub.compiler.descent import compile_hypothesis
from scrub.compiler.plan import ROLL, Plan
from scrub.graph import ModelGraph

from hypotheses.nodes import Hypothesis

BLOCK = 64  # reference data per block: up to BLOCK - 1 distinct draws per node
MAX_FRESH = 16  # edges with fresh draws (conditional other-inputs samplers) the check may add
SUFFIX = " [independent draws]"


def block_for(batch_size: Optional[int]) -> int:
    """BLOCK, or with a caller's chunk size the largest divisor of it up to BLOCK: chunks then hold whole
    blocks, so the check's draws are served from existing passes (else each would cost one)."""
    if not batch_size:
        return BLOCK
    return max(d for d in range(1, min(BLOCK, batch_size) + 1) if batch_size % d == 0)


@dataclass
class IndependentDraws:
    """Per-(seed, datum) values `(n_seeds, N)` of a hypothesis scored with its unexplained inputs drawn
    independently: output metrics (`scrubbed`, "loss" among them) and comparison metrics."""

    scrubbed: dict[str, Tensor]
    comparisons: dict[str, Tensor]
    edges: int  # unexplained input edges, each with its own draw
    draws: int  # distinct draws the most crowded node gives its edges (edges > draws share)
    results: list = field(default_factory=list)  # ScrubResult per seed (the audit trail)

    def state(self) -> dict:
        return {"scrubbed": self.scrubbed, "comparisons": self.comparisons, "edges": self.edges, "draws": self.draws}

    @classmethod
    def from_state(cls, state: Optional[dict]) -> Optional["IndependentDraws"]:
        if not state:
            return None
        return cls(state["scrubbed"], state["comparisons"], state["edges"], state["draws"])


@dataclass(frozen=True)
class Check:
    """The compiled check for one hypothesis: its variant and the plan that computes it."""

    variant: Hypothesis
    plan: Plan
    edges: int
    draws: int


def independent_variant(hypothesis: Hypothesis) -> Optional[Hypothesis]:
    """The hypothesis with every node under the independent policy; None if every node already is."""
    if all(info.policy == "independent" for info in hypothesis.infos().values()):
        return None
    cleared = hypothesis.map(lambda n: replace(n, policy=None) if n.policy else n)
    return replace(cleared, policy="independent", name=hypothesis.name + SUFFIX)


def plan_check(hypothesis: Hypothesis, graph: ModelGraph, n_positions: int, block: int = BLOCK) -> Optional[Check]:
    """The check's plan, or None when there is nothing to check: the hypothesis is already independent
    everywhere, it leaves no input unexplained, or it would need more than MAX_FRESH fresh draws."""
    variant = independent_variant(hypothesis)
    if variant is None:
        return None
    plan = compile_hypothesis(variant, graph, n_positions)
    roles = list(plan.roles)
    edges = fresh = draws = 0
    for nr in plan.nodes[0].values():
        if not nr.other_edges:
            continue
        edges += len(nr.other_edges)
        other = roles[nr.other]
        if other.sampler is not None and other.sampler.conditions_on_parent:
            fresh += len(nr.other_edges)  # drawn relative to this node's datum: no other datum's draw fits
            draws = max(draws, len(nr.other_edges))
            continue
        draws = max(draws, min(len(nr.other_edges), block - 1))
        for k, (_, rid) in enumerate(nr.other_edges):
            shift = 1 + k % (block - 1)
            roles[rid] = replace(roles[rid], kind=ROLL, parent=other.id, sampler=None, shift=shift, block=block,
                                 key=f"roll {shift}/{block} of {other.key}", label=f"{other.label} rolled by {shift}")
    if edges == 0 or fresh > MAX_FRESH:
        return None
    return Check(variant, replace(plan, roles=tuple(roles)), edges, draws)
