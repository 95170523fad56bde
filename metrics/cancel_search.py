"""Finding candidate cancel-out sets cheaply: output sketches and a search over their sums.

Scrubbing a component c (with every other unexplained component restored)
moves the output by a difference vector D_c(x) = y_{all restored but c}(x) -
y_{all restored}(x). Where the model is linear between the components and the
output, scrubbing a set S moves it by the sum of its members' vectors, so S
cancels when that sum is small although each member's vector is large. The
report keeps a *sketch* of every output (a fixed random projection to
`SKETCH_DIM` numbers per datum; the output itself when it has at most
`EXACT_UP_TO` numbers), so every member's D_c comes out of the run that
measures individual effects, and the Gram matrix G_ij = mean over data of
<D_i, D_j> gives the predicted size of any sum: |sum_S D|^2 = sum_{i,j in S} G_ij.

`propose` searches subsets of the large components for sums that nearly
vanish, exhaustively while the number of subsets of a size is at most
`EXHAUSTIVE` and by a beam over the best smaller subsets beyond that. A
prediction is only a candidate: each one is measured exactly afterwards, so
nonlinearity can cost a missed set but never a false one.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

SKETCH_DIM = 64
EXACT_UP_TO = 1024  # outputs with at most this many numbers per datum are kept whole
EXHAUSTIVE = 50_000  # subsets of one size scored exhaustively up to this count, else by beam
BEAM = 256
# predicted |sum D| / smallest |D_c| at most this: measure the set. A joint effect of a quarter of the smallest
# (max_joint) is a ratio of about 0.5 where distances grow with |D|^2; the margin above it is for the
# nonlinearity between components and output (a final norm), which a prediction cannot see and a
# measurement can: a looser threshold costs verification variants, never a false set.
PROPOSE_BELOW = 0.8
CLEARLY_BELOW = 0.1  # a subset predicted this small explains its supersets: they are not proposed
SOFTMAX_DISTANCES = ("kl", "kl_reverse", "l2_probs")  # blind to adding a constant to every logit


def output_sketch(loss, distance: str, seed: int = 0):
    """fn(scrubbed, model, batch) -> (N, k): the scrubbed output minus the model's, at the positions the loss
    reads (weighted as distances weight them), centred over classes for softmax-based distances, and
    projected to SKETCH_DIM numbers when larger than EXACT_UP_TO."""
    centre = distance in SOFTMAX_DISTANCES
    dims = getattr(loss, "dims", None)
    cache: dict = {}

    def fn(ys: Tensor, ym: Tensor, batch) -> Tensor:
        d = (ys - ym).float()
        if dims is not None:
            d = d[..., list(dims)]
        d = d.reshape(d.shape[0], d.shape[1], -1)  # (N, pos, out)
        N, P, V = d.shape
        if centre:
            d = d - d.mean(-1, keepdim=True)
        w = loss.position_weights(batch, P).to(d.device, d.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)  # each datum's positions weigh 1 in total
        if P * V <= EXACT_UP_TO:
            return (d * w.sqrt()[..., None]).reshape(N, P * V)
        key = (P, V, d.device)
        if key not in cache:
            g = torch.Generator().manual_seed(seed)
            cache[key] = (torch.randn(V, SKETCH_DIM, generator=g).to(d.device) / SKETCH_DIM ** 0.5,
                          (torch.randint(0, 2, (P,), generator=g) * 2 - 1).float().to(d.device))
        proj, signs = cache[key]
        rows, cols = w.nonzero(as_tuple=True)
        part = (d[rows, cols] @ proj) * (w[rows, cols].sqrt() * signs[cols])[:, None]  # (weighted pairs, k)
        return torch.zeros(N, SKETCH_DIM, device=d.device).index_add_(0, rows, part)
    return fn


def gram(deltas: Sequence[Tensor]) -> np.ndarray:
    """G_ij = mean over (seed, datum) of <D_i, D_j>, from each component's (seeds, N, k) differences."""
    flat = torch.stack([d.reshape(-1, d.shape[-1]).double() for d in deltas])  # (L, S*N, k)
    return (torch.einsum("isk,jsk->ij", flat, flat) / flat.shape[1]).numpy()


def predicted_ratio(g: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """|sum of the subset's D| / smallest member |D|, predicted from the Gram matrix, per subset (M, k)."""
    block = g[subsets[:, :, None], subsets[:, None, :]]  # (M, k, k)
    total = np.clip(block.sum((1, 2)), 0.0, None)
    smallest = np.diag(g)[subsets].min(1)
    return np.sqrt(total / np.maximum(smallest, 1e-300))


def propose(g: np.ndarray, max_size: int, max_candidates: int, below: float = PROPOSE_BELOW
            ) -> list[tuple[tuple[int, ...], float]]:
    """Subsets (indices into g) whose members' differences are predicted to nearly cancel, best first, at
    most `max_candidates`: (subset, predicted ratio). A subset is left out when a proposed smaller one
    inside it is predicted to cancel as well or better, or clearly (ratio <= CLEARLY_BELOW): then it is
    that smaller set plus parts, not a minimal set of its own."""
    L = len(g)
    kept: list[tuple[tuple[int, ...], float]] = []
    frontier: Optional[np.ndarray] = None
    for k in range(2, min(max_size, L) + 1):
        if comb(L, k) <= EXHAUSTIVE:
            subsets = np.array(list(combinations(range(L), k)), dtype=np.int64)
        elif frontier is None or not len(frontier):
            break
        else:
            subsets = _extend(frontier, L)
        if not len(subsets):
            break
        ratio = predicted_ratio(g, subsets)
        for i in np.nonzero(ratio <= below)[0]:
            s = tuple(int(v) for v in subsets[i])
            if not any(set(t) <= set(s) and r <= max(ratio[i], CLEARLY_BELOW) for t, r in kept):
                kept.append((s, float(ratio[i])))
        frontier = subsets[np.argsort(ratio, kind="stable")[:BEAM]]
    kept.sort(key=lambda t: (t[1], len(t[0]), t[0]))
    return kept[:max_candidates]


def _extend(frontier: np.ndarray, L: int) -> np.ndarray:
    """Every subset one larger than a frontier subset (sorted, distinct)."""
    grown = {tuple(sorted((*s, j))) for s in frontier.tolist() for j in range(L) if j not in s}
    return np.array(sorted(grown), dtype=np.int64).reshape(len(grown), frontier.shape[1] + 1)


def measured_subsets(members: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The subsets with two or more members, the set itself included (what minimality is checked on)."""
    return [s for k in range(2, len(members) + 1) for s in combinations(members, k)]
