"""Data for the language models of docs/your-model.md: random token sequences whose second half repeats
the first (ABCDEF ABCDEF), so predicting the second half is possible from context."""

import torch

from scrub import Dataset


def repeated_tokens(n: int = 300, half: int = 6, vocab: int = 100, seed: int = 0) -> Dataset:
    first = torch.randint(4, vocab, (n, half), generator=torch.Generator().manual_seed(seed))
    return Dataset(torch.cat([first, first], 1), name="repeated tokens")
