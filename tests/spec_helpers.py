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


# --- careless and hostile inputs (tests/test_hostile_input.py) ------------------------------------

def noise(ds):
    """Float jitter: a different value on every datum (agree on it behaves like exact)."""
    return torch.arange(len(ds), dtype=torch.float64) * 1e-12 + 1.0


def nothing(item):
    """None for every datum (agree on it behaves like unconditional)."""
    return None


def nothing_batch(ds):
    return None


def three_values(ds):
    return [1, 2, 3]


def unhashable(item):
    return {"token": item[0]}


def raises(item):
    raise ValueError("cannot read this datum")


def nan_labels():
    data = tiny_data()
    labels = torch.ones(len(data))
    labels[[3, 7]] = float("nan")
    return Dataset(data.inputs, labels=labels, name="nan-labels")


def inf_inputs():
    x = torch.randn(20, 3)
    x[5, 1] = float("inf")
    return Dataset(x, labels=torch.zeros(20), name="inf-inputs")


def big_tokens():
    data = tiny_data()
    inputs = data.inputs.clone()
    inputs[4, 2] = 99
    return Dataset(inputs, name="big-tokens")


def long_sequences():
    return Dataset(torch.randint(2, 6, (20, 12), generator=torch.Generator().manual_seed(2)), name="long")


def not_a_dataset():
    return {"inputs": [1, 2, 3]}
