"""Importable helpers named by test spec files (they live on the tests' sys.path)."""

import torch

from scrub import Dataset


def first_token(item):
    return item


def pool_and_outside():
    """A pool of tokens 2..3 and reference data holding token 5, which no pool datum has."""
    g = torch.Generator().manual_seed(0)
    pool = Dataset(torch.randint(2, 4, (30, 4), generator=g), name="pool")
    outside = Dataset(torch.full((3, 4), 5), name="outside")
    return pool, outside


def tiny_data(n: int = 40):
    return Dataset(torch.randint(2, 6, (n, 4), generator=torch.Generator().manual_seed(1)), name="tiny")


def broken_data():
    raise RuntimeError("the data server is down")


def interrupted_data():
    raise KeyboardInterrupt
