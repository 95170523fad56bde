"""Rewrites' estimates, evaluated per chunk of reference data.

For each (estimate, role) a plan reads, the estimate is called once per chunk
on that role's data, `f(batch, model)`, and its result is brought to the
site's output shape `(batch, pos, d)` (an estimate may give `(batch, d)`, the
same at every position, or a scalar). The values join the chunk's plain
values, keyed by their `Estimated` entry.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scrub.compiler.plan import Estimated, Plan
from scrub.errors import InterventionError


def estimate_values(plan: Plan, adapter, data, roles: dict, rows: slice, plain: dict) -> dict[Estimated, Tensor]:
    needs = plan.estimate_needs()
    if not needs:
        return {}
    width = _width(plain)
    out = {}
    for need in sorted(needs, key=lambda v: (v.estimate, v.role)):
        estimate = plan.estimates[need.estimate]
        index = roles[need.role][rows]
        batch = data.take(index)
        with torch.inference_mode():
            value = estimate(batch, adapter.model)
        out[need] = _shaped(value, len(index), plan.n_positions, width, estimate.name, adapter.device)
    return out


def _width(plain: dict) -> int:
    """The residual stream's width, from any plain residual value of the chunk."""
    for (_, what, _), t in plain.items():
        if what == "resid":
            return t.shape[-1]
    raise InterventionError("a rewrite's estimate has no residual stream to be added to")  # every reader has one


def _shaped(value, n: int, n_pos: int, width: int, name: str, device) -> Tensor:
    if not torch.is_tensor(value):
        raise InterventionError(f"estimate {name!r} returned {type(value).__name__}; it must return a tensor of "
                                f"shape (batch, pos, d) = ({n}, {n_pos}, {width}) or (batch, d).")
    value = value.to(device=device, dtype=torch.float32)
    if value.dim() == 2 and value.shape == (n, width):
        value = value[:, None, :]
    if value.dim() == 0 or (value.dim() == 3 and value.shape[0] == n and value.shape[1] in (1, n_pos)
                            and value.shape[2] == width):
        return value.expand(n, n_pos, width)
    raise InterventionError(f"estimate {name!r} returned shape {tuple(value.shape)} for {n} data; expected the "
                            f"site's output shape (batch, pos, d) = ({n}, {n_pos}, {width}), or (batch, d).")
