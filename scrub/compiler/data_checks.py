"""Checks of the data a hypothesis is compiled against, before any forward pass.

- Labels and float inputs must be finite: a NaN label makes the loss NaN and
  every verdict meaningless, far from its cause.
- Every feature a sampler agrees on is computed on the sampling pool now (the
  draws need it anyway; the `Pool` keeps it for them), so a feature that fails,
  returns the wrong number of values or unhashable ones is reported with its
  node, not in the middle of a run.
- A feature that is degenerate over the pool silently changes what a node
  claims: one value everywhere makes `agree` unconditional, a different value
  on every datum makes it exact (float noise does this). Such features give a
  warning string, which evaluations carry into the verdict's flags and the
  report; the built-ins `constant` and `identity` are meant to behave so and
  are not flagged.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from scrub.data import Dataset
from scrub.errors import DataError, ScrubError, ScrubWarning

from hypotheses.nodes import Hypothesis
from hypotheses.samplers import Pool

MEANT_DEGENERATE = {"constant": 1, "identity": -1}  # features documented to behave like unconditional / exact


def check_finite(data: Dataset) -> None:
    """Labels and floating-point inputs hold no NaN or infinity (DataError names the column and the rows)."""
    for name, column in (("labels", data.labels), ("inputs", data.inputs)):
        values = torch.as_tensor(column) if isinstance(column, np.ndarray) else column
        if not isinstance(values, torch.Tensor) or not values.is_floating_point():
            continue
        bad = ~torch.isfinite(values.reshape(len(values), -1)).all(1)
        if bad.any():
            rows = bad.nonzero().flatten().tolist()
            shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
            raise DataError(f"dataset {data.name!r}: column {name!r} holds NaN or infinite values in {len(rows)} of "
                            f"{len(data)} rows (rows {shown}); scrub cannot score such data. Fix or drop those rows.")


def agreement_features(h: Hypothesis):
    """(node name, field, feature) for every sampler of `h` that agrees on a feature."""
    for node in h:
        for field, sampler in (("sampler", node.sampler), ("other_inputs", node.other_inputs)):
            feature = sampler.agreement_feature
            if feature is not None:
                yield node.name, field, feature


def check_features(h: Hypothesis, pool: Pool) -> tuple[str, ...]:
    """Compute every agreement feature of `h` on the pool; raise naming the node when one fails, and return
    warnings for features that are degenerate over the pool."""
    found: list[str] = []
    for node, field, feature in agreement_features(h):
        try:
            classes = pool.classes(feature)
        except ScrubError as exc:
            if exc.node:
                raise
            raise type(exc)(f"node {node!r} ({field}): {exc.message}", node=node, field=field) from exc
        note = degenerate(feature, classes.counts, pool.n_pool)
        if note:
            text = f"node {node!r}: {note}"
            if text not in found:
                found.append(text)
    for text in found:
        warnings.warn(text, ScrubWarning, stacklevel=4)
    return tuple(found)


def degenerate(feature, counts: np.ndarray, n_pool: int) -> str:
    """A warning when the feature's classes over the pool are one class or all singletons ('' otherwise)."""
    if n_pool < 2:
        return ""
    occupied = int((counts > 0).sum())
    if occupied == 1 and MEANT_DEGENERATE.get(feature.ref) != 1:
        return (f"feature {feature.name!r} takes one value on all {n_pool} data of the pool, so agreeing on it is "
                "unconditional resampling (check the feature: does it return the same value, e.g. None, for "
                "every datum?)")
    if occupied == n_pool and MEANT_DEGENERATE.get(feature.ref) != -1:
        return (f"feature {feature.name!r} takes a different value on each of the {n_pool} data of the pool, so "
                "agreeing on it keeps each datum's own value: it behaves like 'exact' (check the feature: float "
                "noise or a per-datum id makes every value distinct; round or bucket it)")
    return ""
