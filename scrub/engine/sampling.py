"""Draw every role of a plan: one vector of dataset indices per role.

Vectorised over reference data (no per-datum Python loop). Each role has its
own random stream, seeded from (run seed, role key); keys come from the claimed
paths, not node names or child order, so renaming nodes or reordering children
draws exactly the same indices, and adding a node leaves other nodes' draws alone.
Draws come from the pool only (the first `n_pool` data).
"""

from __future__ import annotations

import hashlib

import numpy as np

from scrub.compiler.plan import DRAW, Plan
from scrub.data import Dataset
from scrub.errors import SamplingError

from hypotheses.features import Feature, describe_value
from hypotheses.samplers import Agree, Unconditional


def stream(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))


class AgreementClasses:
    """Per feature: class id of every datum, and the pool sorted by class."""

    def __init__(self, feature: Feature, data: Dataset, n_pool: int):
        self.feature = feature
        self.ids = feature.values(data)
        pool_ids = self.ids[:n_pool]
        self.order = np.argsort(pool_ids, kind="stable")
        n_classes = int(self.ids.max()) + 1
        self.counts = np.bincount(pool_ids, minlength=n_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def draw(self, parent: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform draws within each parent's class; also a mask of parents whose class is empty."""
        cls = self.ids[parent]
        size = self.counts[cls]
        empty = size == 0
        u = rng.random(len(parent))
        offset = np.minimum((u * size).astype(np.int64), np.maximum(size - 1, 0))
        picked = self.order[np.minimum(self.starts[cls] + offset, len(self.order) - 1)]
        return picked, empty


def draw_roles(plan: Plan, data: Dataset, n_pool: int, reference: np.ndarray, seed: int,
               classes_cache: dict | None = None) -> dict[int, np.ndarray]:
    """Indices for every role; role 0 is the reference data."""
    cache = {} if classes_cache is None else classes_cache
    out: dict[int, np.ndarray] = {0: np.asarray(reference, dtype=np.int64)}
    n = len(reference)
    for role in plan.roles[1:]:
        assert role.kind == DRAW and (role.parent is None or role.parent < role.id)
        rng = stream(seed if role.seed is None else role.seed, role.key)
        if isinstance(role.sampler, Unconditional):
            # the agreement formula with one class: a constant feature draws exactly these indices
            out[role.id] = np.minimum((rng.random(n) * n_pool).astype(np.int64), n_pool - 1)
            continue
        if not isinstance(role.sampler, Agree):
            raise SamplingError(f"role {role.label}: cannot draw with sampler {role.sampler}")
        feature = role.sampler.feature
        if feature not in cache:
            cache[feature] = AgreementClasses(feature, data, n_pool)
        parent = out[role.parent]
        picked, empty = cache[feature].draw(parent, rng)
        if empty.any():
            picked = _fallback(role, feature, data, parent, picked, empty, rng, n_pool)
        out[role.id] = picked
    return out


def _fallback(role, feature, data, parent, picked, empty, rng, n_pool):
    policy = role.sampler.if_empty
    if policy == "parent":
        return np.where(empty, parent, picked)
    if policy == "unconditional":
        return np.where(empty, rng.integers(0, n_pool, size=len(parent)), picked)
    first = int(parent[np.argmax(empty)])
    raise SamplingError(
        f"node {role.node!r}: no datum in the sampling pool agrees on feature {feature.name!r} with value "
        f"{describe_value(data, feature, first)} (the parent datum at index {first}); {int(empty.sum())} reference "
        "data are affected. Add such data to the pool, or choose a fallback with "
        "agree(feature, if_empty='parent' or 'unconditional').")
