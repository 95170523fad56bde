"""The compiled form of a hypothesis: what to sample and what to compute.

A plan is symbolic (no tensors) and made before any forward pass.

- A *role* is one vector of dataset indices, one entry per reference datum:
  the reference data, a node's datum x_n, a node's other-inputs datum r_n, or
  (under the independent policy) one draw per unclaimed edge. A *rolled* role
  (kind ROLL) draws nothing: its datum for reference datum i is its parent
  role's datum for another reference datum of the same block (`rolled_order`),
  so its plain values are the parent's, rows reordered (no forward pass).
- A *plain value* is what an ordinary forward pass on a role's data gives: a
  site's output, the residual stream a site reads, or a key mask.
- An *eval* computes a site on scrubbed inputs. Each input port reads

      resid(site, base role) + sum over terms of  mask_P * (value - plain(u, base role))

  i.e. the residual stream on the base datum with the contributions of the
  upstream sites that the hypothesis treats differently swapped out
  (path patching by differences). The output of the plan is the root's value.
- An *estimated value* is a rewrite's estimate f evaluated on a role's data;
  a rewritten copy enters its reader's input as two terms,
  (f(x) - plain(u, base)) + (plain(u, y) - f(y)).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from hypotheses.samplers import Sampler

REFERENCE, DRAW, ROLL = "reference", "draw", "roll"


@dataclass(frozen=True)
class RoleSpec:
    id: int
    kind: str  # REFERENCE or DRAW
    parent: Optional[int]  # role whose datum the sampler conditions on
    sampler: Optional[Sampler]  # draws this role (exact samplers draw nothing: they reuse the parent role)
    key: str  # names the random stream: stable under renaming nodes and reordering children
    label: str  # for people: "x[prev token]", "r[root]"
    node: Optional[str] = None
    seed: Optional[int] = None  # draw with this seed instead of the run's (plans stacked over seeds)
    shift: int = 0  # ROLL roles: the parent's datum of the reference datum `shift` further on in its block
    block: int = 0  # ROLL roles: reference data are rolled within blocks of this many


def rolled_order(n: int, shift: int, block: int) -> np.ndarray:
    """For a ROLL role: which reference datum's parent datum each of the n reference data takes.

    Reference data are cut into blocks of `block` (the last may be shorter) and
    rotated within their block: i -> start + (i - start + s) mod len, with
    s = 1 + (shift - 1) mod (len - 1) for shift >= 1, so that no datum keeps its
    own parent datum (unless it is alone in its block)."""
    i = np.arange(n)
    start = (i // block) * block
    length = np.minimum(block, n - start)
    s = np.where(length > 1, 1 + (shift - 1) % np.maximum(length - 1, 1), 0) if shift >= 1 else 0
    return start + (i - start + s) % length


@dataclass(frozen=True)
class Plain:
    what: str  # "out" or "resid"
    site: str
    role: int


@dataclass(frozen=True)
class Evaluated:
    id: int


@dataclass(frozen=True)
class Estimated:
    """Estimate `estimate` (an index into `Plan.estimates`) evaluated on the data of `role`."""

    estimate: int
    role: int


Value = Union[Plain, Evaluated, Estimated]


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
    direct: tuple[tuple[str, int], ...] = ()  # (direct port, role whose model inputs it reads), e.g. a padding mask
    label: str = ""


@dataclass(frozen=True)
class NodeRoles:
    """Which roles a node's data came from, for the audit trail."""

    x: int
    other: Optional[int] = None
    other_edges: tuple[tuple[str, int], ...] = ()  # independent policy: (edge, role)
    residual: Optional[int] = None  # a rewrite's own residual draw


@dataclass(frozen=True)
class Plan:
    """Roles and evaluations for one or more hypotheses; `outputs[k]` is hypothesis k's scrubbed output
    and `nodes[k]` its node -> NodeRoles map. Plans of several hypotheses share identical roles and
    evaluations (see `merge_plans`)."""

    hypotheses: tuple[str, ...]
    roles: tuple[RoleSpec, ...]
    evals: tuple[Eval, ...]
    outputs: tuple[Value, ...]
    nodes: tuple[dict, ...] = ()
    n_positions: int = 1
    estimates: tuple = ()  # rewrites' estimate functions (hypotheses.rewrites.Estimate), by index

    def estimate_needs(self) -> set[Estimated]:
        """Every estimate-on-a-role some evaluation reads."""
        return {v for e in self.evals for _, expr in e.inputs for t in expr.terms for v in (t.value, t.minus)
                if isinstance(v, Estimated)}

    def plain_needs(self) -> dict[int, set[tuple[str, str]]]:
        """For each role, the plain values some eval or output reads."""
        need: dict[int, set] = defaultdict(set)

        def add(v):
            if isinstance(v, Plain):
                need[v.role].add((v.what, v.site))

        for out in self.outputs:
            add(out)
        for e in self.evals:
            for _, expr in e.inputs:
                add(expr.base)
                for t in expr.terms:
                    add(t.value)
                    add(t.minus)
        return dict(need)

    def rolled(self) -> dict[int, RoleSpec]:
        """The ROLL roles by id (their plain values are their parent's, rows reordered)."""
        return {r.id: r for r in self.roles if r.kind == ROLL}

    def block(self) -> int:
        """Chunks of reference data should be whole multiples of this, so ROLL roles are served from their
        parent's pass (1 when the plan has none)."""
        return max([r.block for r in self.roles if r.kind == ROLL], default=1)

    def pass_needs(self) -> dict[int, set[tuple[str, str]]]:
        """`plain_needs` with each ROLL role's needs moved to the role it rolls: the forward passes run."""
        need = self.plain_needs()
        for rid, r in self.rolled().items():
            if rid in need:
                need.setdefault(_rolled_root(self, r).id, set()).update(need.pop(rid))
        return need

    def summary(self) -> str:
        what = repr(self.hypotheses[0]) if len(self.hypotheses) == 1 else f"{len(self.hypotheses)} hypotheses"
        return (f"plan for {what}: {len(self.roles)} sampled roles, "
                f"{len(self.pass_needs())} plain passes, {len(self.evals)} site evaluations")


def _rolled_root(plan: Plan, role: RoleSpec) -> RoleSpec:
    while role.kind == ROLL:
        role = plan.roles[role.parent]
    return role


def merge_plans(plans: list[Plan]) -> Plan:
    """One plan computing every given plan's outputs. Roles with the same definition (key, sampler,
    parent) are one role, so hypotheses that share a node share its draws (common random numbers);
    identical evaluations are computed once."""
    if len({p.n_positions for p in plans}) > 1:
        raise ValueError("plans for different sequence lengths cannot be merged")
    roles: list[RoleSpec] = []
    role_ids: dict = {}
    evals: list[Eval] = []
    eval_ids: dict = {}
    estimates: list = []
    estimate_ids: dict = {}  # by the estimate and its function: equal names never merge different code
    outputs, nodes, names = [], [], []
    for plan in plans:
        xmap = {}
        for i, est in enumerate(plan.estimates):
            key = (est, est.fn)
            if key not in estimate_ids:
                estimate_ids[key] = len(estimates)
                estimates.append(est)
            xmap[i] = estimate_ids[key]
        rmap: dict[int, int] = {}
        for r in plan.roles:
            parent = None if r.parent is None else rmap[r.parent]
            ident = (r.kind, r.key, r.sampler, parent, r.seed, r.shift, r.block)
            if ident not in role_ids:
                role_ids[ident] = len(roles)
                roles.append(replace(r, id=len(roles), parent=parent))
            rmap[r.id] = role_ids[ident]
        emap: dict[int, int] = {}

        def value(v: Value) -> Value:
            if isinstance(v, Estimated):
                return Estimated(xmap[v.estimate], rmap[v.role])
            return Plain(v.what, v.site, rmap[v.role]) if isinstance(v, Plain) else Evaluated(emap[v.id])

        for e in plan.evals:
            inputs = tuple((port, InputExpr(value(x.base), tuple(Term(value(t.value), value(t.minus), t.positions)
                                                                  for t in x.terms))) for port, x in e.inputs)
            direct = tuple((port, rmap[r]) for port, r in e.direct)
            content = (e.site, inputs, direct)
            if content not in eval_ids:
                eval_ids[content] = len(evals)
                evals.append(Eval(len(evals), e.site, e.stage, inputs, direct, e.label))
            emap[e.id] = eval_ids[content]
        outputs += [value(o) for o in plan.outputs]
        nodes += [{n: NodeRoles(rmap[nr.x], None if nr.other is None else rmap[nr.other],
                                tuple((k, rmap[r]) for k, r in nr.other_edges),
                                None if nr.residual is None else rmap[nr.residual]) for n, nr in part.items()}
                  for part in plan.nodes]
        names += list(plan.hypotheses)
    return Plan(tuple(names), tuple(roles), tuple(evals), tuple(outputs), tuple(nodes), plans[0].n_positions,
                tuple(estimates))


def for_seeds(plan: Plan, seeds) -> Plan:
    """One plan computing `plan` under every seed: each drawn role is copied per seed (the reference
    data and roles that equal them are shared), so the model's own output and everything computed on
    the reference data are computed once. Outputs are ordered seed by seed."""
    copies = [replace(plan, roles=tuple(r if r.kind == REFERENCE else replace(r, seed=s) for r in plan.roles))
              for s in seeds]
    return merge_plans(copies)


def edge_key(path_key: str, port: str, up: str) -> str:
    """The name of one edge copy: the reader's site path from the output, the
    port, the upstream site (no positions: an unclaimed upstream site gets one
    draw for all its positions). Keys independent draws; the reference test
    builds the same names from its own concrete paths."""
    return f"{path_key}.{port} <- {up}"
