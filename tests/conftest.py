"""Shared fixtures: tiny seeded models and datasets."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("WANDB_MODE", "offline")

from scrub import Dataset, ScrubTransformer, TransformerConfig  # noqa: E402


def tiny_transformer(seed=0, n_layers=2, n_heads=2, attn_only=False, pad=False, bidirectional=False, d_vocab=6):
    cfg = TransformerConfig(n_layers=n_layers, d_model=16, n_heads=n_heads, d_head=8, d_vocab=d_vocab, n_ctx=8,
                            d_mlp=None if attn_only else 24, seed=seed, pad_token_id=1 if pad else None,
                            attention_dir="bidirectional" if bidirectional else "causal", init_range=0.3)
    return ScrubTransformer(cfg).eval()


def tiny_tokens(n=24, pos=4, vocab=6, seed=0, pad=False):
    g = torch.Generator().manual_seed(seed)
    toks = torch.randint(2, vocab, (n, pos), generator=g)
    if pad:  # variable lengths: pad the tail of each sequence with token 1
        lengths = torch.randint(2, pos + 1, (n,), generator=g)
        toks[torch.arange(pos)[None, :] >= lengths[:, None]] = 1
    return toks


@pytest.fixture
def tiny():
    return tiny_transformer()


@pytest.fixture
def tiny_data():
    return Dataset(tiny_tokens(), name="tiny")
