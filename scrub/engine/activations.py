"""Plain values for the roles of a plan, computed once per distinct datum.

A plan's roles (the reference data, each node's datum, each other-inputs draw)
all index one data set. Under many seeds or hypotheses they hold the same data
again and again (16 hypotheses x 5 seeds on 4000 data draw each datum dozens of
times), and a plain value is the clean model on its datum: the same whichever
role, seed or hypothesis asked for it. So:

- Roles that need the same depth of the forward pass form a group (a role
  reading only layer 0 does not run layer 11). Neighbouring groups are merged
  when one deeper pass over the union of their data costs less than both
  passes (site costs from `scrub.engine.cost`).
- Data with identical model inputs are one datum (a data set of short
  bracket strings repeats many), and per chunk of reference data a group's
  pass runs once per distinct datum.
- A group whose roles repeat data keeps the values in a cache on the model's
  device, so a datum is computed once per run. The cache is capped at
  `cache_mb` megabytes (the `cache_mb=` argument of `scrub.run`, `run_seeds`,
  `metrics.evaluate`, ...; `DEFAULT_CACHE_MB` otherwise; 0 turns it off); at the
  cap, values the current chunk does not need are dropped first, and a chunk
  needing more data than fit is computed without the cache.
- Passes are sorted by how many leading positions each row needs
  (`Adapter.exact_widths`), batched, and each batch runs on its longest row's
  positions only: padding that the model masks costs nothing, and no number
  changes.

Only positions below the run's width are kept (see `executor.run_width`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

import torch
from torch import Tensor

from scrub.adapters.base import Adapter
from scrub.engine.cost import depth_of, site_costs
from scrub.errors import InterventionError

# Cap on cached plain values per run, in MB, unless the caller passes cache_mb=.
DEFAULT_CACHE_MB = 1024
# Rows per plain pass when filling the cache of a model whose passes can be trimmed (sorted by length first).
FILL_ROWS = 512

Want = tuple[str, str]  # (what, site)


class PlainValues:
    """`chunk(rows)` gives `{(role, what, site): (rows, width, ...)}` for every plain value the plan reads."""

    def __init__(self, adapter: Adapter, inputs: Tensor, roles: dict[int, Tensor], needs: dict[int, set],
                 width: int, max_rows: int, cache_mb: Optional[float] = None):
        self.adapter, self.inputs, self.needs = adapter, inputs, needs
        canonical = _first_equal(inputs)  # data with equal inputs have equal plain values
        self.roles = {r: canonical[v] for r, v in roles.items()}
        self.width = width
        self.n_pos = adapter.n_positions(inputs)
        self.trim = adapter.trims and adapter.graph.positional
        self.fill_rows = min(max_rows, FILL_ROWS) if self.trim else max_rows
        budget = int((DEFAULT_CACHE_MB if cache_mb is None else cache_mb) * 2**20)
        self.groups = []
        for group in self._merged_groups():
            values = _GroupValues(self, group, budget)
            budget -= values.bytes_reserved
            self.groups.append(values)

    def chunk(self, rows: slice) -> dict:
        out: dict = {}
        for g in self.groups:
            out.update(g.values(rows))
        return out

    # --- grouping ------------------------------------------------------------------------------
    def _merged_groups(self) -> list[list[int]]:
        by_depth: dict[float, list[int]] = defaultdict(list)
        for r, wants in self.needs.items():
            by_depth[depth_of(self.adapter, wants)].append(r)
        costs = site_costs(self.adapter, self.n_pos)
        stage = {s.name: s.stage for s in self.adapter.graph.sites}

        def cost(depth: float) -> float:  # per datum: every site below the depth
            return sum(c for name, c in costs.items() if stage[name] < depth) + 1e-9 * depth

        groups = [(d, sorted(by_depth[d]), self._distinct(by_depth[d])) for d in sorted(by_depth)]
        merged: list = []
        for depth, roles, data in groups:
            if merged:
                d0, roles0, data0 = merged[-1]
                union = torch.unique(torch.cat([data0, data]))
                if cost(depth) * len(union) <= cost(d0) * len(data0) + cost(depth) * len(data):
                    merged[-1] = (depth, sorted(roles0 + roles), union)
                    continue
            merged.append((depth, roles, data))
        return [roles for _, roles, _ in merged]

    def _distinct(self, roles: list[int]) -> Tensor:
        return torch.unique(torch.cat([self.roles[r] for r in roles]))

    # --- plain passes --------------------------------------------------------------------------
    def compute(self, index: Tensor, wants: set) -> dict[Want, Tensor]:
        """Plain values of the data at `index` (in that order), positions below the run's width."""
        x = self.inputs[index]
        n = len(index)
        if self.trim:
            need = self.adapter.exact_widths(x, self.width)
            order = torch.argsort(need, stable=True)
            widths = need[order].cpu()  # one transfer per pass, not per datum
        else:
            order, widths = None, None
        out: dict[Want, Tensor] = {}
        for start in range(0, n, self.fill_rows):
            stop = min(start + self.fill_rows, n)
            if order is None:
                sel, rows = slice(start, stop), x[start:stop]
            else:
                sel = order[start:stop]
                rows = x[sel][:, : int(widths[stop - 1])]  # sorted: the batch's longest row is its last
            got = self.adapter.plain_prefix(rows, wants, self.width)
            for want in wants:
                value = got.get(want)
                if value is None:
                    raise InterventionError(f"the adapter returned no {want[0]!r} value for {want[1]!r}")
                if self.width < self.n_pos:
                    value = value[:, : self.width]
                if want not in out:
                    out[want] = value.new_empty((n, *value.shape[1:]))
                out[want][sel] = value
        return out


def _first_equal(inputs: Tensor) -> Tensor:
    """For each datum, the first datum whose model inputs equal its own."""
    n = len(inputs)
    _, inverse = torch.unique(inputs.reshape(n, -1), dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long, device=inputs.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=inputs.device), reduce="amin")
    return first[inverse]


class _GroupValues:
    """One group of roles: per chunk, a pass over its distinct data, or gathers from its cache."""

    def __init__(self, owner: PlainValues, roles: list[int], budget: int):
        self.owner, self.roles = owner, roles
        self.wants = set().union(*(owner.needs[r] for r in roles))
        self.capacity = 0
        self.bytes_reserved = 0
        all_rows = sum(len(owner.roles[r]) for r in roles)
        distinct = owner._distinct(roles)
        if len(distinct) < all_rows and budget > 0:  # some datum is asked for twice: worth keeping
            probe = owner.compute(distinct[:1], self.wants)
            per_row = sum(v[0].numel() * v.element_size() for v in probe.values())
            self.capacity = min(len(distinct), budget // max(per_row, 1))
            self.bytes_reserved = self.capacity * per_row
        if self.capacity:
            device = owner.inputs.device
            self.slot = torch.full((len(owner.inputs),), -1, dtype=torch.long, device=device)  # datum -> slot
            self.held = torch.full((self.capacity,), -1, dtype=torch.long, device=device)  # slot -> datum
            self.store = {w: v.new_empty((self.capacity, *v.shape[1:])) for w, v in probe.items()}

    def values(self, rows: slice) -> dict:
        B = rows.stop - rows.start
        index = torch.cat([self.owner.roles[r][rows] for r in self.roles])
        if self.capacity:
            need = torch.unique(index)
            if len(need) <= self.capacity:
                self._ensure(need)
                return self._split(self.store, self.slot[index], B)
        distinct, inverse = torch.unique(index, return_inverse=True)
        got = self.owner.compute(distinct, self.wants)
        return self._split(got, inverse, B)

    def _split(self, source: dict, where: Tensor, B: int) -> dict:
        out = {}
        for i, r in enumerate(self.roles):
            at = where[i * B:(i + 1) * B]
            for what, site in self.owner.needs[r]:
                out[(r, what, site)] = source[(what, site)][at]
        return out

    def _ensure(self, need: Tensor) -> None:
        """Compute and keep the values of the data in `need` that are not held yet."""
        missing = need[self.slot[need] < 0]
        if not len(missing):
            return
        free = (self.held < 0).nonzero().squeeze(1)
        if len(free) < len(missing):  # drop what this chunk does not need
            wanted = torch.zeros(len(self.slot), dtype=torch.bool, device=need.device)
            wanted[need] = True
            drop = (self.held >= 0) & ~wanted[self.held.clamp_min(0)]
            self.slot[self.held[drop]] = -1
            self.held[drop] = -1
            free = (self.held < 0).nonzero().squeeze(1)
        slots = free[: len(missing)]
        got = self.owner.compute(missing, self.wants)
        for want, value in got.items():
            self.store[want][slots] = value
        self.slot[missing] = slots
        self.held[slots] = missing
