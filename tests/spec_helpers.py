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
                   seeds: str = "[0, 1]") -> str:
    """A spec of tiny.pt (beside it) whose one node claims `site`; data is a spec `data:` value."""
    return textwrap.dedent(f"""\
        name: {name}
        model: {{checkpoint: tiny.pt}}
        data: {data}
        loss: {{next_token: {{mask: null}}}}
        seeds: {seeds}
        hypothesis:
          name: output
          children:
            - name: head
              paths: output <- {site}
        """)
