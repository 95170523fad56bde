"""What the engine needs from a model, and the hook plumbing adapters share.

An adapter exposes the model as a `ModelGraph` and answers two questions:

- `plain(inputs, wants)`: run the model on real inputs and report, for each
  wanted `(what, site)`, the site's output (`"out"`), the residual stream the
  site reads before its own normalisation (`"resid"`), or the key mask (`"mask"`).
- `evaluate(requests)`: compute sites of one stage on given inputs (a head on
  three residual-stream inputs, an MLP or the output on one).

The engine builds every scrubbed input from these two. Hooks that an adapter
plans must fire: `run_hooked` records each firing and raises
`InterventionError` for any that did not, naming the hook.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torch import Tensor

from scrub.errors import InterventionError
from scrub.graph import ModelGraph, Site

OUT, RESID, MASK = "out", "resid", "mask"


@dataclass
class SiteRequest:
    """Evaluate `site` where each port reads `inputs[port]` (`(batch, pos, d_model)`,
    before normalisation); `mask_inputs` are the model inputs whose padding
    defines the key mask (heads of padded models only)."""

    site: Site
    inputs: dict[str, Tensor]
    mask_inputs: Optional[Tensor] = None


class Adapter(ABC):
    """A model seen as sites. Subclasses adapt one kind of model."""

    kind: str = "model"

    def __init__(self, model: torch.nn.Module, graph: ModelGraph):
        self.model = model
        self.graph = graph

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            return p.dtype
        return torch.float32

    def n_positions(self, inputs: Tensor) -> int:
        """Sequence length of these inputs (1 for models without positions)."""
        return inputs.shape[1] if self.graph.positional else 1

    def check_inputs(self, inputs: Tensor) -> None:
        """Raise DataError if these inputs cannot be fed to the model."""

    @abstractmethod
    def forward(self, inputs: Tensor) -> Tensor:
        """The model's own output on these inputs, shaped `(batch, pos, out)`."""

    @abstractmethod
    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Tensor]:
        """Values of an ordinary forward pass (see module doc)."""

    @abstractmethod
    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        """Outputs `(batch, pos, d)` of sites of one stage on the given inputs."""

    def describe(self) -> str:
        return f"{self.kind} ({type(self.model).__name__})"


class StopForward(Exception):
    """Raised by a hook once everything wanted is captured, to skip later layers."""


HookFn = Callable[[Tensor], Optional[Tensor]]


def run_hooked(model, run: Callable[[], Tensor], hooks: list[tuple[str, HookFn]],
               stop_after: Optional[str] = None) -> Optional[Tensor]:
    """Run `run()` with `hooks` on `model`; every hook must fire exactly once.

    A hook fn receives the activation and returns a replacement or None.
    With `stop_after`, the forward pass is cut short once that hook has fired
    (and `None` is returned instead of the model output).
    """
    fired: dict[str, int] = {name: 0 for name, _ in hooks}
    by_name: dict[str, list[HookFn]] = {}
    for name, fn in hooks:
        by_name.setdefault(name, []).append(fn)

    def make(name: str, fns: list[HookFn]):
        def hook(act: Tensor, hook=None):
            fired[name] += 1
            for fn in fns:
                new = fn(act)
                if new is not None:
                    if new.shape != act.shape:
                        raise InterventionError(f"hook {name!r} tried to write shape {tuple(new.shape)} "
                                                f"over an activation of shape {tuple(act.shape)}.")
                    act = new
            if name == stop_after:
                raise StopForward
            return act
        return hook

    missing_names = [n for n in by_name if n not in model.hook_dict]
    if missing_names:
        raise InterventionError(f"the model has no hook point(s) {missing_names}; the adapter's hook names do "
                                "not match this model. Check the adapter's layout settings.")
    result = None
    try:
        with model.hooks(fwd_hooks=[(n, make(n, fns)) for n, fns in by_name.items()]):
            result = run()
    except StopForward:
        result = None
    bad = {n: c for n, c in fired.items() if c != 1}
    if bad:
        raise InterventionError("planned interventions did not fire exactly once: " + ", ".join(
            f"{n!r} fired {c} times" for n, c in bad.items()) + ". The model's forward pass does not go through "
            "these hook points as the adapter expects.")
    return result


def capture(store: dict, key) -> HookFn:
    """A hook fn that stores the activation under `key`."""
    def fn(act: Tensor):
        store[key] = act
        return None
    return fn
