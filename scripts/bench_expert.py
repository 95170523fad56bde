"""A causal scrub written by hand, as an expert would write it: the speed bar for scrub, and a check.

Plain torch and numpy; nothing of scrub. It takes the model (a transformer
with TransformerLens-named hook points and weights), its tokens, and
hypotheses of one shape, the shape of the paren-balancer hypotheses:

    a root whose other-inputs datum r is drawn uniformly from the data, with
    leaf children, each claiming some heads' direct paths to the output (at
    some positions or all) on its own datum, drawn to agree with the
    reference datum on a feature (or the reference datum itself); everything
    else is resampled (computed on r).

For such a hypothesis the treeified output at a read position p is

    unembed(ln_final(resid_final[r, p] + sum over claims c, heads h claimed at p of
                     (head_h[x_c, p] - head_h[r, p])))

where head_h is the head's output (z @ W_O) and every term is the clean
model on one datum. So:

1. clean activations over the whole data set, once (`CleanCache`): the final
   residual stream and each claimed head's output, at the positions the loss
   reads; batches sorted by length and trimmed to their longest row where the
   model masks padding;
2. per hypothesis and seed, each node's data sampled (`draw`; agreement
   classes of a feature computed once);
3. the output assembled from cached pieces (`assemble`), and the loss.

`assemble` also takes given indices, so scripts/bench.py can replay the data
scrub drew and compare the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Claim:
    """A leaf node: these heads' direct paths to the output at `positions` (None: all), on a datum
    agreeing with the reference datum on `feature` (None: the reference datum itself)."""

    name: str
    heads: tuple[tuple[int, int], ...]  # (layer, head)
    positions: Optional[tuple[int, ...]] = None
    feature: Optional[str] = None


@dataclass(frozen=True)
class Shape:
    """A hypothesis of the shape above: a randomly resampled root and its leaf claims."""

    name: str
    claims: tuple[Claim, ...]


class CleanCache:
    """Clean activations of every datum, at the read positions: final residual and claimed heads' outputs."""

    def __init__(self, model, tokens: Tensor, heads: Sequence[tuple[int, int]], read: Sequence[int],
                 pad: Optional[int] = None, causal: bool = True, rows: int = 512):
        self.read = list(read)
        n_layers = len(model.blocks)
        self.resid = None
        self.heads: dict[tuple[int, int], Tensor] = {}
        heads = sorted(set(heads))
        layers = sorted({layer for layer, _ in heads})
        W_O = {layer: model.blocks[layer].attn.W_O.detach() for layer in layers}
        captured: dict = {}
        handles = [model.blocks[layer].attn.hook_z.register_forward_hook(
            lambda mod, inp, out, layer=layer: captured.__setitem__(layer, out)) for layer in layers]
        def last(mod, inp, out):
            captured["resid"] = out
            raise _Done  # nothing after the final residual is needed: skip the unembedding

        handles.append(model.blocks[n_layers - 1].hook_resid_post.register_forward_hook(last))
        need = max(self.read) + 1
        if pad is not None and not causal:  # masked pad keys: each row needs its tokens, and the read positions
            length = tokens.shape[1] - (tokens != pad).flip(1).long().argmax(1)
            length = length.clamp(min=need)
        else:
            length = torch.full((len(tokens),), need if causal else tokens.shape[1])
        order = torch.argsort(length)
        n = len(tokens)
        try:
            with torch.inference_mode():
                for start in range(0, n, rows):
                    idx = order[start:start + rows]
                    width = int(length[idx].max())
                    try:
                        model(tokens[idx, :width])
                    except _Done:
                        pass
                    resid = captured["resid"][:, self.read]
                    if self.resid is None:
                        self.resid = resid.new_empty((n, *resid.shape[1:]))
                    self.resid[idx] = resid
                    for layer, h in heads:
                        z = captured[layer][:, self.read, h]  # (rows, read, d_head)
                        out = z @ W_O[layer][h]  # (rows, read, d_model)
                        self.heads.setdefault((layer, h), out.new_empty((n, *out.shape[1:])))[idx] = out
        finally:
            for handle in handles:
                handle.remove()


class _Done(Exception):
    """Stops a forward pass once everything cached is captured."""


class Expert:
    """Hand-written scrubs of `Shape` hypotheses: cache once, then sample and assemble per hypothesis."""

    def __init__(self, model, tokens: Tensor, raw: Optional[Sequence], shapes: Sequence[Shape],
                 features: dict[str, Callable], read: Sequence[int], pad: Optional[int] = None, causal: bool = True):
        """features: name -> fn(tokens, raw) giving one value per datum."""
        self.model, self.tokens, self.read = model, tokens, list(read)
        heads = {h for s in shapes for c in s.claims for h in c.heads}
        self.cache = CleanCache(model, tokens, heads, read, pad, causal)
        self.ln_w, self.ln_b = model.ln_final.w.detach(), model.ln_final.b.detach()
        self.eps = model.ln_final.eps
        self.W_U = model.unembed.W_U.detach()
        self.b_U = None if model.unembed.b_U is None else model.unembed.b_U.detach()
        used = {c.feature for s in shapes for c in s.claims if c.feature is not None}
        self.classes = {name: _classes(np.asarray(features[name](tokens, raw))) for name in used}

    def draw(self, shape: Shape, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Indices of r and of each claim's datum for every reference datum (all data, in order)."""
        n = len(self.tokens)
        ref = np.arange(n)
        r = rng.integers(0, n, n)
        xs = {}
        for c in shape.claims:
            xs[c.name] = ref if c.feature is None else _agree(self.classes[c.feature], ref, rng)
        return r, xs

    def assemble(self, shape: Shape, r: np.ndarray, xs: dict[str, np.ndarray], rows=slice(None)) -> Tensor:
        """Scrubbed logits `(rows, read positions, vocab)` from cached pieces."""
        r = torch.as_tensor(r[rows])
        resid = self.cache.resid[r].clone()
        column = {p: i for i, p in enumerate(self.read)}
        for c in shape.claims:
            x = torch.as_tensor(xs[c.name][rows])
            cols = list(range(len(self.read))) if c.positions is None else [column[p] for p in c.positions
                                                                              if p in column]
            for h in c.heads:
                head = self.cache.heads[h]
                if len(cols) == len(self.read):
                    resid += head[x] - head[r]
                else:
                    resid[:, cols] += head[x][:, cols] - head[r][:, cols]
        normed = F.layer_norm(resid, resid.shape[-1:], self.ln_w, self.ln_b, self.eps)
        return F.linear(normed, self.W_U.T, self.b_U)


def _classes(values: np.ndarray):
    """Data grouped by feature value: (class of each datum, data sorted by class, class starts, sizes)."""
    _, cls = np.unique(values, axis=0 if values.ndim > 1 else None, return_inverse=True)
    cls = cls.reshape(-1)
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return cls, order, starts, counts


def _agree(classes, parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each parent datum, a datum drawn uniformly from those with the same feature value."""
    cls, order, starts, counts = classes
    c = cls[parent]
    return order[starts[c] + (rng.random(len(parent)) * counts[c]).astype(np.int64)]


def run_all(expert: Expert, shapes: Sequence[Shape], seeds: Sequence[int],
            loss: Callable[[Tensor, slice], Tensor], rows: Optional[int] = None) -> list[list[Tensor]]:
    """Per-datum loss of every hypothesis under every seed: losses[seed index][hypothesis index]."""
    n = len(expert.tokens)
    rows = rows or n
    out = []
    with torch.inference_mode():
        for seed in seeds:
            per_seed = []
            for k, shape in enumerate(shapes):
                r, xs = expert.draw(shape, np.random.default_rng([seed, k]))
                per_seed.append(torch.cat([loss(expert.assemble(shape, r, xs, slice(i, i + rows)), slice(i, i + rows))
                                           for i in range(0, n, rows)]))
            out.append(per_seed)
    return out
