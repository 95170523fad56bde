"""Run a plan on a model, chunk by chunk of reference data.

Per chunk: one stacked forward pass gives every plain value any role needs
(a rolled role's values are its parent's, rows reordered, when the chunk
holds whole blocks); then the plan's site evaluations run stage by stage (all
evaluations of one stage in one adapter call); then the output. Everything stays on the model's
device; indices are moved there once, before the loop. Memory is bounded by
the chunk size, not by the number of reference data.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import torch
from torch import Tensor

from scrub.adapters.base import OUT, Adapter, SiteRequest
import numpy as np

from scrub.compiler.plan import ROLL, Evaluated, InputExpr, Plain, Plan, Value, rolled_order
from scrub.data import Dataset
from scrub.engine.estimates import estimate_values
from scrub.errors import InterventionError

# Rows per stacked forward pass when the caller does not choose a chunk size.
DEFAULT_MAX_ROWS = 2048

ChunkFn = Callable[[slice, list, Tensor], None]  # (reference rows, scrubbed per output, model outputs)


def chunk_size_for(plan: Plan, max_rows: int = DEFAULT_MAX_ROWS) -> int:
    """Reference data per chunk so that the stacked plain pass has at most `max_rows` rows (rounded up to
    whole blocks, so that rolled roles cost no pass)."""
    n_roles = max(1, len(plan.pass_needs()))
    block = plan.block()
    return -(-max(1, max_rows // n_roles) // block) * block


def execute(plan: Plan, adapter: Adapter, data: Dataset, roles: dict[int, Tensor], chunk: int,
            on_chunk: ChunkFn) -> None:
    """Compute every output of the plan for every reference datum; hand each chunk to `on_chunk`."""
    needs = plan.plain_needs()
    needs.setdefault(0, set()).add((OUT, "output"))  # the model's own output on the reference data
    stages: dict[int, list] = defaultdict(list)
    for e in plan.evals:
        stages[e.stage].append(e)
    n = len(roles[0])
    orders = _roll_orders(plan, n)
    with torch.inference_mode():
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            served = _served_by_roots(orders, rows)
            plain = _plain_values(adapter, data, roles, _fold(needs, served), rows)
            if served:
                plain = _RolledView(plain, served)
            plain.update(estimate_values(plan, adapter, data, roles, rows, plain))  # rewrites' estimates
            evaluated: dict[int, Tensor] = {}
            for stage in sorted(stages):
                batch = stages[stage]
                inputs = _StageInputs(batch, plain, evaluated)
                requests = [_request(adapter, data, roles, e, rows, inputs) for e in batch]
                outputs = adapter.evaluate(requests)
                if len(outputs) != len(batch):
                    raise InterventionError(f"adapter returned {len(outputs)} results for {len(batch)} site evaluations")
                for e, out, req in zip(batch, outputs, requests):
                    expected = next(iter(req.inputs.values())).shape[:2]
                    if out.shape[:2] != expected:
                        raise InterventionError(f"evaluating {e.label} gave shape {tuple(out.shape)}; "
                                                f"expected (batch, pos) = {tuple(expected)}")
                    evaluated[e.id] = out
            scrubbed = [_value(out, plain, evaluated) for out in plan.outputs]
            on_chunk(rows, scrubbed, plain[(0, OUT, "output")])


def _plain_values(adapter, data, roles, needs, rows) -> dict:
    """Plain values for every role: roles that need the same depth of the forward pass share one
    stacked pass, which stops at that depth (a role reading only layer 0 does not run layer 11)."""
    stage = {s.name: s.stage for s in adapter.graph.sites}
    groups: dict[float, list[int]] = defaultdict(list)
    for r, wants in needs.items():
        depth = max(stage[site] + (0.5 if what == OUT else 0.0) for what, site in wants)
        groups[depth].append(r)
    B = rows.stop - rows.start
    out = {}
    for depth in sorted(groups):
        order = sorted(groups[depth])
        index = torch.cat([roles[r][rows] for r in order])
        wants = set().union(*(needs[r] for r in order))
        got = adapter.plain(data.inputs[index], wants)
        for i, r in enumerate(order):
            for what, site in needs[r]:
                t = got.get((what, site))
                if t is None:
                    raise InterventionError(f"the adapter returned no {what!r} value for {site!r}")
                out[(r, what, site)] = t[i * B:(i + 1) * B]
    return out


def _roll_orders(plan: Plan, n: int) -> dict[int, tuple[int, np.ndarray]]:
    """For each ROLL role: (the drawn role it rolls, which reference datum's value each datum takes)."""
    out: dict[int, tuple[int, np.ndarray]] = {}
    for r in plan.roles:
        if r.kind == ROLL:
            root, order = out.get(r.parent, (r.parent, np.arange(n)))
            out[r.id] = (root, order[rolled_order(n, r.shift, r.block)])
    return out


def _served_by_roots(orders: dict, rows: slice) -> dict[int, tuple[int, Tensor]]:
    """ROLL roles whose reordering stays inside this chunk: (root role, row order within the chunk)."""
    out = {}
    for rid, (root, order) in orders.items():
        local = order[rows] - rows.start
        if local.min(initial=0) >= 0 and local.max(initial=0) < rows.stop - rows.start:
            out[rid] = (root, torch.as_tensor(local))
    return out


def _fold(needs: dict, served: dict) -> dict:
    """Needs with every served ROLL role's needs computed in its root's pass instead."""
    if not served:
        return needs
    out = {r: set(w) for r, w in needs.items() if r not in served}
    for rid, (root, _) in served.items():
        if rid in needs:
            out.setdefault(root, set()).update(needs[rid])
    return out


class _RolledView(dict):
    """Plain values where a served ROLL role's entries are made on demand from its root's (rows reordered):
    never all at once, since a plan may roll one role hundreds of ways."""

    def __init__(self, plain: dict, served: dict):
        super().__init__(plain)
        self.served = served

    def __missing__(self, key):
        role, what, site = key
        if role not in self.served:
            raise KeyError(key)
        root, order = self.served[role]
        value = dict.__getitem__(self, (root, what, site))
        return value.index_select(0, order.to(value.device))


def _value(v: Value, plain: dict, evaluated: dict) -> Tensor:
    if isinstance(v, Plain):
        return plain[(v.role, v.what, v.site)]
    if isinstance(v, Evaluated):
        return evaluated[v.id]
    return plain[v]  # an estimate (scrub.engine.estimates)


class _StageInputs:
    """The inputs of one stage's evaluations, computed with shared work.

    Equal input expressions give one tensor (so the adapter can project it once
    for every head that reads it). Inputs that share difference terms (16
    variants of one hypothesis differ in one term each) share partial sums:
    each input's terms are ordered by how many inputs of the stage use them, and
    partial sums are memoised by term prefix, so a shared term is added once."""

    def __init__(self, evals, plain: dict, evaluated: dict):
        self.plain, self.evaluated = plain, evaluated
        uses: dict = defaultdict(int)
        for e in evals:
            for _, expr in e.inputs:
                for t in set(expr.terms):
                    uses[(expr.base, t)] += 1
        self.uses = uses
        self.done: dict = {}
        self.partial: dict = {}

    def get(self, expr: InputExpr) -> Tensor:
        if expr not in self.done:
            terms = sorted(expr.terms, key=lambda t: (-self.uses[(expr.base, t)], repr(t)))
            self.done[expr] = self._prefix(expr.base, tuple(terms))
        return self.done[expr]

    def _prefix(self, base, terms: tuple) -> Tensor:
        """base + terms, in order. Prefixes of terms other inputs also use are memoised; the tail only
        this input uses is summed into one copy (memoising it would keep a tensor per term)."""
        shared = len(terms)
        while shared and self.uses[(base, terms[shared - 1])] < 2:
            shared -= 1
        x = self._shared_prefix(base, terms[:shared])
        if shared < len(terms):
            x = x.clone()
            for t in terms[shared:]:
                self._add(x, t)
        return x

    def _shared_prefix(self, base, terms: tuple) -> Tensor:
        key = (base, terms)
        if key not in self.partial:
            if not terms:
                return _value(base, self.plain, self.evaluated)
            x = self._shared_prefix(base, terms[:-1]).clone()
            self._add(x, terms[-1])
            self.partial[key] = x
        return self.partial[key]

    def _add(self, x: Tensor, t) -> None:
        value, minus = _value(t.value, self.plain, self.evaluated), _value(t.minus, self.plain, self.evaluated)
        if t.positions is None:
            x.add_(value).sub_(minus)  # in place on our own copy: no temporary
        else:
            pos = list(t.positions)
            x[:, pos] += value[:, pos] - minus[:, pos]


def _request(adapter, data, roles, e, rows, inputs: _StageInputs) -> SiteRequest:
    inputs = {port: inputs.get(expr) for port, expr in e.inputs}
    direct = {port: data.inputs[roles[r][rows]] for port, r in e.direct}
    return SiteRequest(adapter.graph.site(e.site), inputs, direct)
