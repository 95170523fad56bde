"""Draw every role of a plan: one vector of dataset indices per role.

Vectorised over reference data (no per-datum Python loop): each role's sampler
draws for itself (`Sampler.draw`, in the language). Each role has its own
random stream, seeded from (run seed, role key); keys come from the claimed
paths, not node names or child order, so renaming nodes or reordering children
draws exactly the same indices, and adding a node leaves other nodes' draws
alone. Draws come from the pool only (the first `n_pool` data).
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from scrub.compiler.plan import DRAW, ROLL, Plan, rolled_order
from scrub.data import Dataset

from hypotheses.samplers import Pool


def stream(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))


def draw_roles(plan: Plan, data: Dataset, n_pool: int, reference: np.ndarray, seed: int,
               pool: Optional[Pool] = None) -> dict[int, np.ndarray]:
    """Indices for every role; role 0 is the reference data. Pass one `pool` to several calls to
    compute each feature's agreement classes once."""
    pool = pool or Pool(data, n_pool)
    out: dict[int, np.ndarray] = {0: np.asarray(reference, dtype=np.int64)}
    for role in plan.roles[1:]:
        assert role.kind in (DRAW, ROLL) and (role.parent is None or role.parent < role.id)
        if role.kind == ROLL:  # no draw: another reference datum's datum of the parent role
            out[role.id] = out[role.parent][rolled_order(len(out[0]), role.shift, role.block)]
            continue
        rng = stream(seed if role.seed is None else role.seed, role.key)
        parent = out[0] if role.parent is None else out[role.parent]  # unconditioned draws only use its length
        out[role.id] = role.sampler.draw(parent, rng, pool, role.node)
    return out
