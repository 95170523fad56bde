"""Importable helpers named by test spec files (they live on the tests' sys.path)."""

import textwrap
from pathlib import Path

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


def write_tiny_checkpoint(folder: Path) -> Path:
    """A seeded 2-layer ScrubTransformer saved as folder/tiny.pt (what tiny_spec_text's specs load)."""
    from scrub import ScrubTransformer, TransformerConfig, save_checkpoint

    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_vocab=6, n_ctx=8, d_mlp=16, seed=0)
    save_checkpoint(ScrubTransformer(cfg), folder / "tiny.pt")
    return folder / "tiny.pt"


def tiny_spec_text(name: str, data: str = "{function: spec_helpers.tiny_data}", site: str = "head.1.0",
                   seeds: str = "[0, 1]", checkpoint: str = "tiny.pt", keys_sampler: str | None = None) -> str:
    """A spec of tiny.pt (beside it, or `checkpoint`) whose node 'head' claims `site`; data is a spec `data:`
    value. With `keys_sampler`, head's child 'keys' claims '.k <- head.0.1' with that sampler (lines: 1 name,
    2 model, 3 data, 4 loss, 5 seeds, 14 the sampler)."""
    text = textwrap.dedent(f"""\
        name: {name}
        model: {{checkpoint: {checkpoint}}}
        data: {data}
        loss: {{next_token: {{mask: null}}}}
        seeds: {seeds}
        hypothesis:
          name: output
          children:
            - name: head
              paths: output <- {site}
        """)
    if keys_sampler is not None:
        text += ("      children:\n        - name: keys\n          paths: .k <- head.0.1\n"
                 f"          sampler: {keys_sampler}\n")
    return text


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
