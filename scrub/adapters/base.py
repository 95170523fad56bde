"""What the engine needs from a model: the adapter protocol, and nothing more.

An adapter exposes the model as a `ModelGraph` (sites, ports, position rules:
every architecture fact the compiler uses) and answers two questions:

- `plain(inputs, wants)`: run the model on real inputs and report, for each
  wanted `(what, site)`, the site's output (`"out"`) or the residual stream
  the site reads before its own normalisation (`"resid"`).
- `evaluate(requests)`: compute sites of one stage on given inputs (a head on
  its q, k, v residual-stream inputs, an MLP or the output on one).

plus `check_inputs` (can these inputs be fed to the model?), `dims` (shapes
for the cost model) and `exact_widths` (how many leading positions a plain
pass must see for its early positions to be exact: padding trimmed). A new model family is one adapter file and one line in
`scrub.adapters.ADAPTERS` (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch
from torch import Tensor

from scrub.graph import ModelGraph, Site

OUT, RESID = "out", "resid"


@dataclass
class SiteRequest:
    """Evaluate `site` where each additive port reads `inputs[port]` (`(batch, pos, d_model)`, before
    normalisation) and each direct port (a padding mask) reads facts of the model inputs `direct[port]`."""

    site: Site
    inputs: dict[str, Tensor]
    direct: dict[str, Tensor] = field(default_factory=dict)


class Adapter:
    """A model seen as sites. Subclasses adapt one kind of model.

    accepts(model): whether `adapt(model)` should pick this adapter."""

    # Whether plain passes and site evaluations may run on the leading positions only (`exact_widths`);
    # an adapter sets it when its model's values at early positions never read later ones.
    trims = False

    def __init__(self, model: Optional[torch.nn.Module], graph: ModelGraph):
        self.model = model
        self.graph = graph

    @classmethod
    def accepts(cls, model) -> bool:
        return False

    @property
    def device(self) -> torch.device:
        for p in (self.model.parameters() if self.model is not None else ()):
            return p.device
        return torch.device("cpu")

    def n_positions(self, inputs: Tensor) -> int:
        """Sequence length of these inputs (1 for models without positions)."""
        return inputs.shape[1] if self.graph.positional else 1

    def check_inputs(self, inputs: Tensor) -> None:
        """Raise DataError if these inputs cannot be fed to the model."""

    def dims(self):
        """Shapes for the cost model (`transformer_sites.Dims`), or None: every site then costs one unit."""
        return None

    def exact_widths(self, inputs: Tensor, width: int) -> Tensor:
        """Per row of `inputs`, the fewest leading positions a plain pass must see so that its values at
        positions < `width` equal those of a pass over every position. Without a rule for the model:
        every position (no trimming)."""
        return torch.full((len(inputs),), inputs.shape[1], dtype=torch.long, device=inputs.device)

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Tensor]:
        """Values of an ordinary forward pass (see module doc)."""
        raise NotImplementedError

    def plain_prefix(self, inputs: Tensor, wants: Iterable[tuple[str, str]], width: int) -> dict:
        """`plain`, where only the first `width` positions of each value are used (an adapter may skip
        computing the rest)."""
        return self.plain(inputs, wants)

    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        """Outputs `(batch, pos, d)` of sites of one stage on the given inputs."""
        raise NotImplementedError
