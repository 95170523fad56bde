"""The compiled form of a hypothesis: what to sample and what to compute.

A plan is symbolic (no tensors) and made before any forward pass.

- A *role* is one vector of dataset indices, one entry per reference datum:
  the reference data, a node's datum x_n, a node's other-inputs datum r_n, or
  (under the independent policy) one draw per unclaimed edge.
- A *plain value* is what an ordinary forward pass on a role's data gives: a
  site's output, the residual stream a site reads, or a key mask.
- An *eval* computes a site on scrubbed inputs. Each input port reads

      resid(site, base role) + sum over terms of  mask_P * (value - plain(u, base role))

  i.e. the residual stream on the base datum with the contributions of the
  upstream sites that the hypothesis treats differently swapped out
  (path patching by differences). The output of the plan is the root's value.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional, Union

from hypotheses.samplers import Sampler

REFERENCE, DRAW = "reference", "draw"


@dataclass(frozen=True)
class RoleSpec:
    id: int
    kind: str  # REFERENCE or DRAW
    parent: Optional[int]  # role whose datum the sampler conditions on
    sampler: Optional[Sampler]  # Unconditional or Agree (exact draws reuse the parent role)
    key: str  # names the random stream: stable under renaming nodes and reordering children
    label: str  # for people: "x[prev token]", "r[root]"
    node: Optional[str] = None


@dataclass(frozen=True)
class Plain:
    what: str  # "out", "resid" or "mask"
    site: str
    role: int


@dataclass(frozen=True)
class Evaluated:
    id: int


Value = Union[Plain, Evaluated]


@dataclass(frozen=True)
class Term:
    value: Value
    minus: Plain
    positions: Optional[tuple[int, ...]] = None  # non-negative; None: every position


@dataclass(frozen=True)
class InputExpr:
    base: Plain  # Plain("resid", reader, base role)
    terms: tuple[Term, ...] = ()


@dataclass(frozen=True)
class Eval:
    id: int
    site: str
    stage: int
    inputs: tuple[tuple[str, InputExpr], ...]
    mask_role: Optional[int] = None
    label: str = ""


@dataclass(frozen=True)
class NodeRoles:
    """Which roles a node's data came from, for the audit trail."""

    x: int
    other: Optional[int] = None
    other_edges: tuple[tuple[str, int], ...] = ()  # independent policy: (edge, role)


@dataclass(frozen=True)
class Plan:
    hypothesis: str
    roles: tuple[RoleSpec, ...]
    evals: tuple[Eval, ...]
    output: Value
    nodes: dict = field(default_factory=dict)  # node name -> NodeRoles
    n_positions: int = 1

    def plain_needs(self) -> dict[int, set[tuple[str, str]]]:
        """For each role, the plain values some eval or the output reads."""
        need: dict[int, set] = defaultdict(set)

        def add(v):
            if isinstance(v, Plain):
                need[v.role].add((v.what, v.site))

        add(self.output)
        for e in self.evals:
            for _, expr in e.inputs:
                add(expr.base)
                for t in expr.terms:
                    add(t.value)
                    add(t.minus)
        return dict(need)

    def summary(self) -> str:
        return (f"plan for {self.hypothesis!r}: {len(self.roles)} sampled roles, "
                f"{len(self.plain_needs())} plain passes, {len(self.evals)} site evaluations")


def edge_key(path_key: str, port: str, up: str) -> str:
    """The name of one edge copy: the reader's site path from the output, the
    port, the upstream site (no positions: an unclaimed upstream site gets one
    draw for all its positions). Keys independent draws; the reference test
    builds the same names from its own concrete paths."""
    return f"{path_key}.{port} <- {up}"
