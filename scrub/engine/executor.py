"""Run a plan on a model, chunk by chunk of reference data.

Per chunk: the plain values every role needs (`scrub.engine.activations`:
once per distinct datum, from a capped cache when data repeat; a rolled
role's values are its parent's, rows reordered, when the chunk holds whole
blocks) and the rewrites' estimates; then the
plan's site evaluations run stage by stage (all evaluations of one stage in
one adapter call); then the output. Everything stays on the model's device;
indices are moved there once, before the loop. Memory is bounded by the chunk
size and the cache cap, not by the number of reference data.

When the caller reads only some output positions and the model allows it
(`Adapter.trims`), everything runs on the leading positions the read ones
depend on (`run_width`); the outputs hold NaN beyond them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scrub.adapters.base import OUT, Adapter, SiteRequest
from scrub.compiler.plan import ROLL, Evaluated, InputExpr, Plain, Plan, Value, rolled_order
from scrub.data import Dataset
from scrub.engine.activations import PlainValues
from scrub.engine.estimates import estimate_values
from scrub.errors import DataError, InterventionError
from scrub.graph import KEYS

# Rows per stacked forward pass when the caller does not choose a chunk size.
DEFAULT_MAX_ROWS = 2048

ChunkFn = Callable[[slice, list, Tensor], None]  # (reference rows, scrubbed per output, model outputs)


def chunk_size_for(plan: Plan, max_rows: int = DEFAULT_MAX_ROWS, width_fraction: float = 1.0,
                   output_size: float = 1.0) -> int:
    """Reference data per chunk so that a chunk's stacked values (each role's plain values, each
    hypothesis' output, `output_size` times as large as a residual: a large vocabulary) hold at most
    `max_rows` rows of every position; a run computing a fraction of the positions (`run_width`) takes
    that many times more. Rounded up to whole blocks, so that rolled roles cost no pass."""
    units = max(1, len(plan.pass_needs())) + len(plan.outputs) * output_size
    chunk = max(1, int(max_rows / max(width_fraction, 1e-9) / units))
    block = plan.block()
    return -(-chunk // block) * block


def run_width(plan: Plan, adapter: Adapter, n_pos: int, read_positions: Optional[Sequence[int]]) -> int:
    """How many leading positions a run computes: enough for the output positions the caller reads.

    Position t of a causal model's values reads positions <= t only, and MLPs and the output read their
    own position; a head of a bidirectional model reads every key, so a plan evaluating one keeps every
    position. Adapters that cannot run on fewer positions (`trims` false) keep every position."""
    if read_positions is None or not adapter.trims or not adapter.graph.positional:
        return n_pos
    read = [int(p) for p in read_positions]
    bad = [p for p in read if not -n_pos <= p < n_pos]
    if not read or bad:
        raise DataError(f"read_positions={list(read_positions)}: give positions within 0..{n_pos - 1} "
                        f"(or -{n_pos}..-1), at least one.")
    width = max(p % n_pos for p in read) + 1
    graph = adapter.graph
    if not graph.causal and any(graph.port(port).positions == KEYS
                                for e in plan.evals for port, _ in e.inputs):
        return n_pos
    return width


def execute(plan: Plan, adapter: Adapter, data: Dataset, roles: dict[int, Tensor], chunk: int,
            on_chunk: ChunkFn, width: Optional[int] = None, cache_mb: Optional[float] = None,
            max_rows: int = DEFAULT_MAX_ROWS) -> None:
    """Compute every output of the plan for every reference datum; hand each chunk to `on_chunk`.

    width: leading positions to compute (`run_width`; default all); outputs are NaN beyond it.
    cache_mb: cap on cached plain values (`scrub.engine.activations`)."""
    n = len(roles[0])
    orders = _roll_orders(plan, n)
    # chunks of whole blocks serve every rolled role from its root's values; otherwise they are computed
    aligned = chunk % plan.block() == 0
    needs = plan.pass_needs() if aligned else plan.plain_needs()
    needs.setdefault(0, set()).add((OUT, "output"))  # the model's own output on the reference data
    n_pos = adapter.n_positions(data.inputs)
    width = n_pos if width is None else width
    plains = PlainValues(adapter, data.inputs, roles, needs, width, max_rows, cache_mb)
    stages: dict[int, list] = defaultdict(list)
    for e in plan.evals:
        stages[e.stage].append(e)

    def full(y: Tensor) -> Tensor:  # positions the run did not compute: NaN, never a made-up number
        return y if width == n_pos else F.pad(y, (0, 0, 0, n_pos - width), value=float("nan"))

    with torch.inference_mode():
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            plain = plains.chunk(rows)
            if aligned and orders:
                plain = _RolledView(plain, _served_by_roots(orders, rows))
            estimates = estimate_values(plan, adapter, data, roles, rows, plain)
            plain.update({k: v[:, :width] for k, v in estimates.items()})  # rewrites' estimates
            evaluated: dict[int, Tensor] = {}
            for stage in sorted(stages):
                batch = stages[stage]
                inputs = _StageInputs(batch, plain, evaluated, width)
                requests = [_request(adapter, data, roles, e, rows, inputs, width < n_pos and width)
                            for e in batch]
                outputs = adapter.evaluate(requests)
                if len(outputs) != len(batch):
                    raise InterventionError(f"adapter returned {len(outputs)} results for {len(batch)} site evaluations")
                for e, out, req in zip(batch, outputs, requests):
                    expected = next(iter(req.inputs.values())).shape[:2]
                    if out.shape[:2] != expected:
                        raise InterventionError(f"evaluating {e.label} gave shape {tuple(out.shape)}; "
                                                f"expected (batch, pos) = {tuple(expected)}")
                    evaluated[e.id] = out
            scrubbed = [full(_value(out, plain, evaluated)) for out in plan.outputs]
            on_chunk(rows, scrubbed, full(plain[(0, OUT, "output")]))


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

    def __init__(self, evals, plain: dict, evaluated: dict, width: int):
        self.plain, self.evaluated, self.width = plain, evaluated, width
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
        tail = [t for t in terms[shared:] if self._positions(t) != []]
        if tail:
            x = x.clone()
            for t in tail:
                self._add(x, t)
        return x

    def _shared_prefix(self, base, terms: tuple) -> Tensor:
        key = (base, terms)
        if key not in self.partial:
            if not terms:
                return _value(base, self.plain, self.evaluated)
            if self._positions(terms[-1]) == []:  # the term changes only positions this run does not compute
                return self._shared_prefix(base, terms[:-1])
            x = self._shared_prefix(base, terms[:-1]).clone()
            self._add(x, terms[-1])
            self.partial[key] = x
        return self.partial[key]

    def _positions(self, t) -> Optional[list]:
        """The computed positions a term changes: None for all of them."""
        if t.positions is None:
            return None
        pos = [p for p in t.positions if p < self.width]
        return None if len(pos) == self.width else pos

    def _add(self, x: Tensor, t) -> None:
        pos = self._positions(t)
        value, minus = _value(t.value, self.plain, self.evaluated), _value(t.minus, self.plain, self.evaluated)
        if pos is None:
            x.add_(value).sub_(minus)  # in place on our own copy: no temporary
        else:
            x[:, pos] += value[:, pos] - minus[:, pos]


def _request(adapter, data, roles, e, rows, inputs: _StageInputs, trim_to) -> SiteRequest:
    inputs = {port: inputs.get(expr) for port, expr in e.inputs}
    direct = {port: data.inputs[roles[r][rows]] for port, r in e.direct}
    if trim_to:
        direct = {port: x[:, :trim_to] for port, x in direct.items()}
    return SiteRequest(adapter.graph.site(e.site), inputs, direct)
