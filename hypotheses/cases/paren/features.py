"""The original paren experiments' features, vectorised over token rows `(N, 42)`.

The model reads right to left, and the original analysis defines its features
on the proportion of open brackets in each *suffix*: p(i) = #'(' / #brackets
among positions >= i (undefined where no bracket follows). Every test here is
that definition, decided with integer counts so no rounding can move a datum
across a class boundary:

- count test: p(0) = 1/2, i.e. as many opens as closes;
- horizon test: p(i) <= 1/2 for every i, i.e. no suffix has more opens than
  closes (right to left, the running count never goes negative). On
  equal-count strings this is the usual left-to-right test; on others the two
  differ (26% of the Redwood set);
- count^(: count test AND the first bracket is '(' (one boolean);
- p1 if starts '(': -1 for strings starting with ')', else p(0) (equal
  fractions are one class);
- horizon class at position i (what head 2.1 reads there): 0 at padding,
  -1/+1 at the end token after '(' / ')', -2/+2 where p(i) > 1/2 / <= 1/2;
- the *adjusted* proportion replaces p(i) by head 0.0's idealised attention
  average (`adjusted_open_proportion`); where it is exactly 1/2 (each group
  of keys half open: every equal-count string at positions 0 and 1) it is
  1/2 here, decided exactly.

Each feature takes a `scrub.Dataset` (so spec files name it as
`{function: hypotheses.cases.paren.features.NAME, per: batch}`) or a token tensor.
`phi` is the rewrite estimate of experiment 2b.
"""

from __future__ import annotations

import warnings
import weakref
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from hypotheses.cases.paren.model import CLOSE, END, N_CTX, OPEN, PAD, START

_last: list = [None, None]  # (weak reference to the last token tensor, its suffix counts)


def _tokens(data) -> Tensor:
    return (data.inputs if hasattr(data, "inputs") else torch.as_tensor(data)).cpu()


def suffix_counts(data) -> tuple[np.ndarray, np.ndarray]:
    """(opens, brackets) at or after each position, int64 `(N, 42)`; the last token tensor's are kept, since
    every feature of a dataset reads them."""
    tokens = _tokens(data)
    if _last[0] is not None and _last[0]() is tokens:
        return _last[1]
    t = tokens.numpy()
    opens = (t == OPEN)[:, ::-1].cumsum(1)[:, ::-1]
    brackets = ((t == OPEN) | (t == CLOSE))[:, ::-1].cumsum(1)[:, ::-1]
    _last[0], _last[1] = weakref.ref(tokens), (opens, brackets)
    return opens, brackets


def open_proportion_after(data) -> np.ndarray:
    """p(i) = opens / brackets at or after i, float64 `(N, 42)`; NaN where no bracket follows."""
    opens, brackets = suffix_counts(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        return opens / brackets


def count_test(data) -> np.ndarray:
    """As many opens as closes: p(0) = 1/2."""
    opens, brackets = suffix_counts(data)
    return 2 * opens[:, 0] == brackets[:, 0]


def horizon_test(data) -> np.ndarray:
    """No suffix has more opens than closes: p(i) <= 1/2 at every position."""
    opens, brackets = suffix_counts(data)
    return (2 * opens <= brackets).all(1)


def starts_with_open(data) -> np.ndarray:
    return _tokens(data).numpy()[:, 1] == OPEN


def count_open(data) -> np.ndarray:
    """count^(: the count test AND the first bracket is '(' (one boolean, two classes)."""
    return count_test(data) & starts_with_open(data)


def p1_if_starts_open(data) -> np.ndarray:
    """-1 for strings starting with ')', else the proportion of opens p(0) (equal fractions agree)."""
    opens, brackets = suffix_counts(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = opens[:, 0] / brackets[:, 0]
    return np.where(starts_with_open(data), p, -1.0)


def input_length(data) -> np.ndarray:
    """Tokens that are not padding (brackets + 2): which keys head 2.1's padding mask lets through."""
    return (_tokens(data).numpy() != PAD).sum(1)


def overall_open_proportion(tokens: Tensor) -> Tensor:
    """#'(' / #brackets of each row, float `(N,)`."""
    opens = (tokens == OPEN).sum(1).float()
    return opens / ((tokens == OPEN) | (tokens == CLOSE)).sum(1).clamp(min=1).float()


# --- horizon classes ---------------------------------------------------------------------------

def _classes(tokens: np.ndarray, above_half: np.ndarray, i: int) -> np.ndarray:
    """The 5 classes at position i (first match wins): PAD 0; END after '(' -1, after ')' +1; else -2 where
    the proportion is above 1/2, +2 where it is not."""
    t, prev = tokens[:, i], tokens[:, i - 1]
    return np.select([t == PAD, (t == END) & (prev == OPEN), (t == END) & (prev == CLOSE), above_half[:, i]],
                     [0, -1, 1, -2], default=2)


def horizon_class(data, i: int) -> np.ndarray:
    """What head 2.1 reads at position i, from the suffix proportion p(i)."""
    opens, brackets = suffix_counts(data)
    return _classes(_tokens(data).numpy(), 2 * opens > brackets, int(i))


def adjusted_horizon_class(data, i: int) -> np.ndarray:
    """`horizon_class` from the adjusted proportion (experiments 3b and 4)."""
    return _classes(_tokens(data).numpy(), adjusted_above_half(data), int(i))


def adjusted_horizon_test(data) -> np.ndarray:
    """Every position's adjusted horizon class is >= 0 (no evidence of imbalance anywhere)."""
    return _no_evidence_of_imbalance(data, adjusted_above_half(data))


def _no_evidence_of_imbalance(data, above_half: np.ndarray) -> np.ndarray:
    tokens = _tokens(data).numpy()
    return np.stack([_classes(tokens, above_half, i) >= 0 for i in range(tokens.shape[1])], 1).all(1)


# --- the adjusted proportion: head 0.0's idealised attention --------------------------------------

def attention_masses(state_dict) -> tuple[np.ndarray, np.ndarray]:
    """(A_before, A_after) `(43, 42)`: for input length L (brackets + 2) and query position q, the attention
    head 0.0 pays to bracket keys before q and at or after q, on an idealised input: queries read an open
    bracket at their position, keys the mean of the normalised open and close embeddings there, START at 0,
    END at L - 1, padding keys masked. (Only the ratio of the two matters.)"""
    sd = {k: v.double() for k, v in state_dict.items()}
    queries, keys = _idealised_inputs(sd)
    q = queries @ sd["blocks.0.attn.W_Q"][0] + sd["blocks.0.attn.b_Q"][0]
    k = keys @ sd["blocks.0.attn.W_K"][0] + sd["blocks.0.attn.b_K"][0]
    attn = _masked_scores(q @ k.transpose(-1, -2), q.shape[-1]).softmax(-1)  # (L, q, k)
    before, after = _key_groups()
    return (attn * before).sum(-1).numpy(), (attn * after).sum(-1).numpy()


_L = torch.arange(N_CTX + 1)[:, None, None]  # input length (brackets + 2)
_POS = torch.arange(N_CTX)[None, :, None]  # query position
_KEY = torch.arange(N_CTX)[None, None, :]  # key position


def _idealised_inputs(sd: dict) -> tuple[Tensor, Tensor]:
    """Layer-0-normalised inputs `(43, 42, d)` for each length: START at 0, END at L - 1, padding after, and
    in between an open bracket (for queries) or the mean of the normalised open and close (for keys)."""
    ln = lambda x: torch.nn.functional.layer_norm(x, (x.shape[-1],), sd["blocks.0.ln1.w"],  # noqa: E731
                                                  sd["blocks.0.ln1.b"], 1e-5)
    emb = ln(sd["pos_embed.W_pos"][:N_CTX, None, :] + sd["embed.W_E"][None, :, :])  # (pos, token, d)

    def idealised(bracket: Tensor) -> Tensor:
        x = torch.where(_POS < _L, bracket[None], emb[None, :, PAD])
        x = torch.where(_POS == 0, emb[None, :, START], x)
        return torch.where(_POS == _L - 1, emb[None, :, END], x)

    return idealised(emb[:, OPEN]), idealised(emb[:, [OPEN, CLOSE]].mean(1))


def _masked_scores(scores: Tensor, d_head: int) -> Tensor:
    """Padding keys lowered by 10,000 before the 1/sqrt(d_head) scaling, as the original does."""
    return torch.where(_KEY >= _L, scores - 10_000, scores) / d_head ** 0.5


def _key_groups() -> tuple[Tensor, Tensor]:
    """Bracket keys before the query, and at or after it, `(43, 42, 42)`."""
    bracket = ((_KEY >= 1) & (_KEY <= _L - 2)).expand(N_CTX + 1, N_CTX, N_CTX)
    before = bracket & (_KEY < _POS)
    return before, bracket & ~before


@lru_cache(maxsize=1)
def external_attention_masses() -> tuple[np.ndarray, np.ndarray]:
    """`attention_masses` of the external model's head 0.0 (the shared folder must be present)."""
    from hypotheses.cases.paren.model import load_external_model
    return attention_masses(load_external_model().state_dict())


def adjusted_open_proportion(data, masses=None) -> np.ndarray:
    """(A_b p_before + A_a p_after) / (A_b + A_a) at each position, float64 `(N, 42)`; exactly 1/2 where each
    group of bracket keys that has members is half open; NaN where no bracket is at or after the position."""
    tokens = _tokens(data).numpy()
    a_before, a_after = masses if masses is not None else external_attention_masses()
    opens_after, after = suffix_counts(data)
    opens_before, before = opens_after[:, :1] - opens_after, after[:, :1] - after
    length = (tokens != PAD).sum(1)
    A_b, A_a = a_before[length], a_after[length]  # (N, 42)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_b = np.where(before > 0, opens_before / np.maximum(before, 1), 0.0)
        p_a = opens_after / after
        A_b = np.where(before > 0, A_b, 0.0)
        p = (A_b * p_b + A_a * p_a) / (A_b + A_a)
    return np.where(adjusted_ties(data), 0.5, p)


def adjusted_ties(data) -> np.ndarray:
    """Where the adjusted proportion is exactly 1/2 whatever the weights: a bracket (or START) follows, and
    each group of bracket keys with members (before the position, from it on) is half open."""
    opens_after, after = suffix_counts(data)
    opens_before, before = opens_after[:, :1] - opens_after, after[:, :1] - after
    return ((before == 0) | (2 * opens_before == before)) & (2 * opens_after == after) & (after > 0)


def adjusted_above_half(data) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return adjusted_open_proportion(data) > 0.5


def key_weights_float32(state_dict) -> Tensor:
    """Per-key weights `(43, 42, 42)` of the adjusted proportion computed the way the original code does, in
    float32: softmax of the idealised scores, every bracket key given its group's mean attention, renormalised.
    Ties (an exact 1/2) then come out a rounding error above or below 1/2, by an order of operations no
    other implementation reproduces; this exists to measure how much that matters (3b, 4 with 'float32 ties')."""
    sd = {k: v.float() for k, v in state_dict.items()}
    queries, keys = _idealised_inputs(sd)  # the original's order of operations follows: einsums, numpy softmax
    q = torch.einsum("hd,lqd->lqh", sd["blocks.0.attn.W_Q"][0].T, queries) + sd["blocks.0.attn.b_Q"][0]
    k = torch.einsum("hd,lkd->lkh", sd["blocks.0.attn.W_K"][0].T, keys) + sd["blocks.0.attn.b_K"][0]
    scores = _masked_scores(torch.einsum("lqh,lkh->lqk", q, k), q.shape[-1]).numpy()
    e = np.exp(scores - scores.max(-1, keepdims=True))
    attn = e / e.sum(-1, keepdims=True)  # float32, as scipy's softmax on float32 input
    weights = torch.zeros(attn.shape)
    for group in _key_groups():
        g = group.numpy()
        with warnings.catch_warnings():  # an empty group's mean is NaN, then 0
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = attn.mean(-1, keepdims=True, where=g)
        weights += torch.from_numpy(np.where(g, np.nan_to_num(mean, nan=0.0), 0.0).astype(np.float32))
    return weights / weights.sum(-1, keepdim=True)


@lru_cache(maxsize=1)
def external_key_weights_float32() -> Tensor:
    from hypotheses.cases.paren.model import load_external_model
    return key_weights_float32(load_external_model().state_dict())


def float32_above_half(data) -> np.ndarray:
    """Adjusted proportion above 1/2 with the original's float32 arithmetic (see `key_weights_float32`)."""
    tokens = _tokens(data)
    weights = external_key_weights_float32()[(tokens != PAD).sum(1)]  # (N, q, k)
    p = (weights * (tokens == OPEN)[:, None, :].float()).sum(-1).numpy()
    with np.errstate(invalid="ignore"):
        return p > 0.5


def float32_horizon_class(data, i: int) -> np.ndarray:
    """`adjusted_horizon_class` with the original's float32 ties (a comparison, not a hypothesis we hold)."""
    return _classes(_tokens(data).numpy(), float32_above_half(data), int(i))


def float32_horizon_test(data) -> np.ndarray:
    return _no_evidence_of_imbalance(data, float32_above_half(data))


# --- experiment 2b's estimate ---------------------------------------------------------------------

def open_direction(model) -> Tensor:
    """v = (mean over positions 1..40 of OV(LN(W_E['('] + W_pos)) - the same for ')') / 2: the direction
    head 0.0 writes more of the more open brackets it attends to, from the weights alone (no b_O)."""
    sd = model.state_dict()
    ln = lambda x: torch.nn.functional.layer_norm(x, (x.shape[-1],), sd["blocks.0.ln1.w"],  # noqa: E731
                                                  sd["blocks.0.ln1.b"], model.cfg.eps)

    def ov(token: int) -> Tensor:
        x = ln(sd["embed.W_E"][token] + sd["pos_embed.W_pos"][1:41])
        return ((x @ sd["blocks.0.attn.W_V"][0] + sd["blocks.0.attn.b_V"][0]) @ sd["blocks.0.attn.W_O"][0]).mean(0)

    return (ov(OPEN) - ov(CLOSE)) / 2


def phi(batch, model) -> Tensor:
    """Experiment 2b: head 0.0 writes phi(p) = v (2p - 1), p the string's proportion of opens, at every
    position (`(batch, d_model)`)."""
    p = overall_open_proportion(batch.inputs)
    return (2 * p - 1)[:, None] * open_direction(model).to(p.device)[None, :]
