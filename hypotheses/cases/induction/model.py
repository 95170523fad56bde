"""A bundled 2-layer attention-only induction model and the data it was trained on.

Why synthetic data: induction is only checkable when we know, per position,
whether the next token can be copied from an earlier occurrence. Each sequence
is `BOS` followed by random filler with one segment of distinct tokens written
twice. The segment's length and both start positions vary per sequence, so the
only way to predict the repeat is induction (find the previous occurrence of
the current token, copy the token after it), not a fixed offset. Segment
tokens never occur in the filler, so inside the repeat the previous occurrence
is unique and the next token is fully determined.

Conventions (all masks are `(n, seq_len)` over *predicting* positions):
`loss_mask[i, t]` is True when the loss of predicting `tokens[i, t + 1]` from
position `t` counts (every position but the last). `induction_mask[i, t]` is
True when `tokens[i, t + 1]` is copyable: `t` runs over the second occurrence
except its last token, i.e. the targets are the repeat minus its first token.
`induction_source[i, t]` is the position an ideal induction head attends to
from `t` (the token after the earlier occurrence of `tokens[i, t]`), -1 elsewhere.

Trained by `scripts/train_induction.py`; roles of heads come from the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from scrub.data import Dataset
from scrub.errors import DataError
from scrub.models.transformer import ScrubTransformer, load_checkpoint

D_VOCAB = 40  # token 0 is BOS, 1..39 are content tokens
SEQ_LEN = 32
BOS = 0
SEG_LEN = (4, 10)  # inclusive range of the repeated segment's length
CHECKPOINT = Path(__file__).parent / "induction.pt"


class Sequences(NamedTuple):
    """Generated tokens plus where the repeat is; per-sequence tensors are `(n,)`."""

    tokens: Tensor  # (n, seq_len) long
    induction_mask: Tensor  # (n, seq_len) bool, see module docstring
    induction_source: Tensor  # (n, seq_len) long, -1 outside the mask
    seg_len: Tensor  # (n,)
    first_start: Tensor  # (n,) position of the first occurrence's first token
    second_start: Tensor  # (n,) position of the repeat's first token


def _uniform_int(low: Tensor, high: Tensor, gen: torch.Generator) -> Tensor:
    """Per-element uniform integers in [low, high] (inclusive)."""
    return low + (torch.rand(low.shape, generator=gen) * (high - low + 1)).long().clamp(max=high - low)


def make_sequences(n: int, seed: int, seq_len: int = SEQ_LEN, d_vocab: int = D_VOCAB,
                   seg_len: tuple[int, int] = SEG_LEN) -> Sequences:
    """`n` sequences, deterministic in `seed`; vectorised, so n=20000 takes milliseconds."""
    lo, hi = seg_len
    n_content = d_vocab - 1
    if n < 1:
        raise DataError(f"make_sequences: n={n}; ask for at least one sequence.")
    if not 2 <= lo <= hi:
        raise DataError(f"make_sequences: seg_len={seg_len} must satisfy 2 <= low <= high.")
    if 1 + 2 * hi > seq_len:
        raise DataError(f"make_sequences: seq_len={seq_len} cannot hold BOS plus two segments of length {hi}.")
    if hi >= n_content:
        raise DataError(f"make_sequences: d_vocab={d_vocab} leaves no filler tokens for segments of length {hi}.")
    gen = torch.Generator().manual_seed(seed)
    L = _uniform_int(torch.full((n,), lo), torch.full((n,), hi), gen)
    s1 = _uniform_int(torch.ones(n, dtype=torch.long), seq_len - 2 * L, gen)
    s2 = _uniform_int(s1 + L, seq_len - L, gen)
    # A random permutation of content tokens per sequence: its first L entries
    # are the segment, the rest is the pool the filler draws from.
    perm = torch.rand(n, n_content, generator=gen).argsort(-1) + 1
    filler_idx = _uniform_int(L[:, None].expand(n, seq_len), torch.full((n, seq_len), n_content - 1), gen)
    tokens = perm.gather(1, filler_idx)
    pos = torch.arange(seq_len)[None, :]
    for start in (s1, s2):
        off = pos - start[:, None]
        inside = (off >= 0) & (off < L[:, None])
        tokens = torch.where(inside, perm.gather(1, off.clamp(0, hi - 1)), tokens)
    tokens[:, 0] = BOS
    off2 = pos - s2[:, None]
    mask = (off2 >= 0) & (off2 < (L - 1)[:, None])
    source = torch.where(mask, pos - (s2 - s1)[:, None] + 1, torch.full_like(tokens, -1))
    return Sequences(tokens, mask, source, L, s1, s2)


def make_dataset(n: int = 2000, seed: int = 0, **kwargs) -> Dataset:
    """A `scrub.Dataset` of induction sequences (fields as in the module docstring)."""
    seqs = make_sequences(n, seed, **kwargs)
    loss_mask = torch.ones_like(seqs.induction_mask)
    loss_mask[:, -1] = False
    fields = {"loss_mask": loss_mask, "induction_mask": seqs.induction_mask,
              "induction_source": seqs.induction_source, "seg_len": seqs.seg_len,
              "first_start": seqs.first_start, "second_start": seqs.second_start}
    return Dataset(inputs=seqs.tokens, fields=fields, name="induction")


def load_model(device: str | torch.device = "cpu") -> ScrubTransformer:
    """The bundled checkpoint, in eval mode."""
    if not CHECKPOINT.exists():
        raise FileNotFoundError(f"{CHECKPOINT} is missing; regenerate it with `python scripts/train_induction.py`.")
    return load_checkpoint(CHECKPOINT, device=device)


def heads(model: ScrubTransformer | None = None) -> dict[str, list[str]]:
    """Roles found by the training script, e.g. `{"previous_token": ["head.0.2"], "induction": [...]}`."""
    model = model if model is not None else load_model()
    roles = model.cfg.extra.get("roles")
    if not roles:
        raise DataError("this checkpoint has no 'roles' metadata; it was not written by scripts/train_induction.py.")
    return {k: list(v) for k, v in roles.items()}
