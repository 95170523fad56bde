"""Uncertainty: a bootstrap interval over reference data, and the spread over resampling seeds.

Per-(seed, datum) values `(S, N)` come from an evaluation. Two things are
reported for every number:

- `low`/`high`, the interval verdicts use: a percentile bootstrap over
  reference data, resampling each datum together with all its seeds. Each
  datum's resampled data are drawn independently of every other datum's, so
  the per-datum averages over seeds are independent, and this interval covers
  both the choice of reference data and the randomness of resampling: it is
  an interval for the reported value, the mean over every seed and datum
  (coverage is tested against exactly computed truths in
  tests/test_statistics.py).
- `seed_low`/`seed_high`: the smallest and largest value of the statistic
  computed seed by seed (None with one seed). It shows how much one run's
  number moves with the seed alone. It is not an interval for the reported
  value and does not enter the verdict: the mean over S seeds is more precise
  than any one seed, so single seeds may fall outside `low`/`high` when the
  resampling noise dominates.

Statistics are functions of means of several paired arrays (e.g. loss
recovered from scrubbed, model and random losses): the same resampled data
are used for every array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

DEFAULT_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    seed_low: Optional[float] = None
    seed_high: Optional[float] = None
    level: float = LEVEL

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"

    def percent(self) -> str:
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}]"

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "seed_low": self.seed_low,
                "seed_high": self.seed_high, "level": self.level}


def _as_np(a) -> np.ndarray:
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=float)
    return a[None, :] if a.ndim == 1 else a


def bootstrap_means(arrays: Sequence, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, len(arrays)): means of each array over resampled data (paired across arrays)."""
    per_datum = np.stack([_as_np(a).mean(0) for a in arrays])  # (k, N): each datum averaged over seeds
    n = per_datum.shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(arrays)))
    for start in range(0, n_boot, 256):  # bounded memory: 256 x N indices at a time
        b = min(256, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        out[start:start + b] = per_datum[:, idx].mean(-1).T
    return out


def estimate(arrays: Sequence, stat: Callable[..., float] = lambda m: m, n_boot: int = DEFAULT_BOOT,
             level: float = LEVEL, seed: int = 0) -> Estimate:
    """Point value and intervals of `stat(mean_1, mean_2, ...)` over paired arrays `(S, N)`."""
    arrays = [_as_np(a) for a in arrays]
    vec = np.vectorize(stat)
    value = float(stat(*[a.mean() for a in arrays]))
    boots = vec(*bootstrap_means(arrays, n_boot, seed).T)
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    low, high = (float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))) if len(boots) else (
        math.nan, math.nan)
    seed_low = seed_high = None
    S = max(a.shape[0] for a in arrays)  # arrays with one row (e.g. the model's own loss) hold for every seed
    if S >= 2:
        per_seed = np.array([stat(*[a[s if a.shape[0] > 1 else 0].mean() for a in arrays]) for s in range(S)],
                            dtype=float)
        if np.isfinite(per_seed).all():
            seed_low, seed_high = float(per_seed.min()), float(per_seed.max())
    return Estimate(value, low, high, seed_low, seed_high, level)


def p_value_above(arrays: Sequence, stat: Callable[..., float], threshold: float, n_boot: int = DEFAULT_BOOT,
                  seed: int = 0) -> float:
    """One-sided bootstrap p-value for 'stat > threshold' (small when clearly above)."""
    boots = np.vectorize(stat)(*bootstrap_means([_as_np(a) for a in arrays], n_boot, seed).T)
    boots = np.where(np.isfinite(boots), boots, -np.inf)
    return float((1 + (boots <= threshold).sum()) / (1 + len(boots)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
