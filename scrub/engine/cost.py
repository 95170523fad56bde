"""The limit: the least work a plan inherently needs, in forward-pass equivalents.

A scrub must compute, for every sampled role, the part of an ordinary forward
pass that the values it reads depend on (a site's output needs every site of a
lower stage, and that site; the residual a site reads needs every site of a
lower stage), plus one evaluation of each site the plan evaluates on scrubbed
inputs, plus the model's own output on the reference data. Dividing by the
cost of one full forward pass gives the limit in forward-pass equivalents per
reference datum; `scripts/bench.py` reports measured time over the time of
that many plain forward passes.

Site costs are multiply-add counts from the model's shapes (attention heads:
q/k/v/o projections and the two position-by-position products; MLPs: two
matrix products; the output: the unembedding). LayerNorms and embedding
lookups are counted as free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scrub.adapters.base import OUT, RESID, Adapter
from scrub.compiler.plan import Plan
from scrub.graph import HEAD, MLP, OUTPUT, Site


def site_costs(adapter: Adapter, n_pos: int) -> dict[str, float]:
    """FLOPs per datum of every site (1 per term for models without known shapes)."""
    dims = adapter.dims()
    return {s.name: _cost(s, n_pos, dims) for s in adapter.graph.sites}


def _cost(site: Site, P: int, dims) -> float:
    if dims is None:  # no shapes known: every input term costs one unit, the readout nothing
        return 0.0 if site.kind == OUTPUT else 1.0
    d, h = dims.d_model, dims.d_head
    if site.kind == HEAD:
        return 2.0 * (3 * P * d * h + 2 * P * P * h + P * h * d)
    if site.kind == MLP:
        return 2.0 * 2 * P * d * dims.d_mlp
    if site.kind == OUTPUT:
        return 2.0 * P * d * dims.d_vocab_out
    return 0.0


@dataclass(frozen=True)
class Limit:
    forward_equivalents: float  # per reference datum
    plain: float  # of which: prefixes of ordinary forward passes, one per role
    evals: float  # of which: site evaluations on scrubbed inputs
    n_roles: int
    n_evals: int

    def __str__(self) -> str:
        return (f"{self.forward_equivalents:.2f} forward passes per datum ({self.plain:.2f} in {self.n_roles} "
                f"plain prefixes, {self.evals:.2f} in {self.n_evals} site evaluations)")


def plan_limit(plan: Plan, adapter: Adapter) -> Limit:
    costs = site_costs(adapter, plan.n_positions)
    full = sum(costs.values())
    sites = {s.name: s for s in adapter.graph.sites}
    needs = plan.pass_needs()  # rolled roles are served from their parent's pass
    needs.setdefault(0, set()).add((OUT, "output"))  # the model's own output on the reference data
    plain = 0.0
    for wants in needs.values():
        required: set[str] = set()
        for what, name in wants:
            if what not in (OUT, RESID):
                continue  # key masks come from the tokens: no compute
            site = sites[name]
            required |= {s.name for s in adapter.graph.sites if s.stage < site.stage}  # what `site` reads
            if what == OUT:
                required.add(name)
        plain += sum(costs[n] for n in required)
    evals = sum(costs[e.site] for e in plan.evals)
    return Limit((plain + evals) / full, plain / full, evals / full, len(needs), len(plan.evals))


def depth_of(adapter: Adapter, wants) -> float:
    """How far a forward pass must go for these values: a site's output needs its own stage, the residual
    it reads only the stages below."""
    stage = {s.name: s.stage for s in adapter.graph.sites}
    return max(stage[site] + (0.5 if what == OUT else 0.0) for what, site in wants)


def least_flops(plan: Plan, adapter: Adapter, inputs: Tensor, roles: dict, width: int) -> float:
    """The limit of a run on drawn data, in FLOPs (multiply-adds x 2, as `site_costs`): each distinct
    datum's forward pass once, as deep as any role reads it and over the positions its values need
    (`Adapter.exact_widths` for `width` computed positions), plus every site evaluation at `width`
    positions for every reference datum. Against a machine's matrix-multiply rate it says how long a
    scrub needs at least on that machine, whatever its forward pass costs."""
    dims = adapter.dims()
    sites = adapter.graph.sites
    needs = plan.plain_needs()
    needs.setdefault(0, set()).add((OUT, "output"))
    index = {r: np.asarray(torch.as_tensor(v).cpu()) for r, v in roles.items()}
    depth = np.full(len(inputs), -1.0)
    for r, wants in needs.items():
        np.maximum.at(depth, index[r], depth_of(adapter, wants))
    used = np.nonzero(depth >= 0)[0]
    n_pos = adapter.n_positions(inputs)
    if adapter.trims and adapter.graph.positional:
        widths = adapter.exact_widths(inputs[torch.as_tensor(used, device=inputs.device)], width).cpu().numpy()
    else:
        widths = np.full(len(used), n_pos)
    total = 0.0
    pairs, counts = np.unique(np.stack([depth[used], widths]), axis=1, return_counts=True)
    for (d, w), count in zip(pairs.T, counts):
        total += count * sum(_cost(s, int(w), dims) for s in sites if s.stage < d)
    evals = sum(_cost(adapter.graph.site(e.site), width, dims) for e in plan.evals)
    return total + evals * len(index[0])
