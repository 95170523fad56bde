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


# --- a tiny spec and its checkpoint, for tests that write spec files ------------------------------

def save_tiny_checkpoint(path):
    """The tiny transformer the test specs name (2 layers of 2 heads, vocabulary 6, context 8)."""
    from scrub import ScrubTransformer, TransformerConfig, save_checkpoint

    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_vocab=6, n_ctx=8, d_mlp=16, seed=0)
    model = ScrubTransformer(cfg)
    save_checkpoint(model, path)
    return model


def tiny_spec(name="tiny", checkpoint="tiny.pt", data="spec_helpers.tiny_data", seeds="[0]", site="head.1.0",
              keys_sampler=None) -> str:
    """A spec on the tiny checkpoint: node 'head' claims `site`; with `keys_sampler`, its child 'keys' claims
    '.k <- head.0.1' with that sampler (lines: 1 name, 2 model, 3 data, 4 loss, 5 seeds, 14 the sampler)."""
    import json

    text = (f"name: {json.dumps(name, ensure_ascii=False)}\nmodel: {{checkpoint: {checkpoint}}}\n"
            f"data: {{function: {data}}}\nloss: {{next_token: {{mask: null}}}}\nseeds: {seeds}\n"
            f"hypothesis:\n  name: output\n  children:\n    - name: head\n      paths: output <- {site}\n")
    if keys_sampler is not None:
        text += (f"      children:\n        - name: keys\n          paths: .k <- head.0.1\n"
                 f"          sampler: {keys_sampler}\n")
    return text
