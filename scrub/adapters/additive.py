"""Adapter for a plain torch module whose additive structure the user declares.

For toy models such as `out = a(x) + b(x) - c(x)`: each declared term is a
site that reads the datum, the output reads their weighted sum:

    adapter = additive(model, terms={"a": model.a, "b": model.b, "c": (model.c, -1.0)})

A term is a callable of the model input (or a submodule name) with an optional
coefficient; `readout` (default: identity) maps the sum to the output. The
declaration is checked against the module's own forward on real data before
any scrub runs: a declaration that does not reproduce the model is an error,
never a silently different model.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Union

import torch
from torch import Tensor

from scrub.adapters.base import RESID, Adapter, SiteRequest
from scrub.errors import AdapterError
from scrub.graph import INPUT, OUTPUT, ModelGraph, Site

Term = Union[str, Callable[[Tensor], Tensor], tuple]


def _as_positions(t: Tensor) -> Tensor:
    """(batch, d) -> (batch, 1, d): the engine treats every value as (batch, pos, d)."""
    return t.unsqueeze(1) if t.dim() == 2 else t.reshape(t.shape[0], 1, -1) if t.dim() == 1 else t


class AdditiveAdapter(Adapter):

    def __init__(self, model: torch.nn.Module, terms: Mapping[str, Term],
                 readout: Optional[Callable[[Tensor], Tensor]] = None, atol: float = 1e-5):
        if not terms:
            raise AdapterError("additive(): declare at least one term, e.g. terms={'a': model.a}.")
        self.terms: dict[str, tuple[Callable, float]] = {}
        for name, term in terms.items():
            if name in ("output", "embed", "pos_embed") or "<" in name or " " in name:
                raise AdapterError(f"additive(): term name {name!r} is reserved or not a plain name.")
            fn, coef = (term if isinstance(term, tuple) else (term, 1.0))
            if isinstance(fn, str):
                if not hasattr(model, fn):
                    raise AdapterError(f"additive(): {type(model).__name__} has no submodule {fn!r} for term {name!r}.")
                fn = getattr(model, fn)
            if not callable(fn):
                raise AdapterError(f"additive(): term {name!r} must be callable or a submodule name, got {fn!r}.")
            self.terms[name] = (fn, float(coef))
        self.readout = readout or (lambda s: s)
        self.atol = atol
        self._checked = False
        sites = [Site(n, INPUT, 0, description=f"{c:+g} * term") for n, (_, c) in self.terms.items()]
        sites.append(Site("output", OUTPUT, 1, ("in",), description="readout(sum of terms)"))
        super().__init__(model, ModelGraph(sites, positional=False))

    def check_inputs(self, inputs: Tensor) -> None:
        """The declared sum must reproduce the model's own output on these inputs."""
        if self._checked:
            return
        sample = inputs[: min(len(inputs), 64)]
        with torch.no_grad():
            declared = self._forward_declared(sample)
            actual = _as_positions(self.model(sample))
        if declared.shape != actual.shape or not torch.allclose(declared, actual, atol=self.atol, rtol=1e-4):
            err = (declared - actual).abs().max().item() if declared.shape == actual.shape else float("nan")
            raise AdapterError(f"the declared additive structure does not reproduce {type(self.model).__name__}'s "
                               f"forward (max difference {err:.3g}, shapes {tuple(declared.shape)} vs "
                               f"{tuple(actual.shape)}). Check the terms, their coefficients and the readout.")
        self._checked = True

    def _term(self, name: str, inputs: Tensor) -> Tensor:
        fn, coef = self.terms[name]
        return coef * _as_positions(fn(inputs))

    def _readout(self, total: Tensor) -> Tensor:
        """The user's readout sees the sum as (batch, d), as their model does."""
        return _as_positions(self.readout(total[:, 0]))

    def _forward_declared(self, inputs: Tensor) -> Tensor:
        return self._readout(sum(self._term(n, inputs) for n in self.terms))

    def _forward(self, inputs: Tensor) -> Tensor:
        return _as_positions(self.model(inputs))

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        out = {}
        for what, name in set(wants):
            if name == "output":
                if what == RESID:
                    out[(what, name)] = sum(self._term(n, inputs) for n in self.terms)
                else:
                    out[(what, name)] = self._forward(inputs)
            else:
                out[(what, name)] = self._term(name, inputs)
        return out

    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        site = requests[0].site
        if site.kind != OUTPUT:
            raise AdapterError(f"term {site.name!r} reads the datum directly and cannot be evaluated on other inputs")
        x = torch.cat([r.inputs["in"] for r in requests])
        B = requests[0].inputs["in"].shape[0]
        return list(self._readout(x).split(B))


def additive(model: torch.nn.Module, terms: Mapping[str, Term], readout=None, atol: float = 1e-5) -> AdditiveAdapter:
    """Declare `model`'s output as `readout(sum of coef * term(x))` (see module doc)."""
    return AdditiveAdapter(model, terms, readout, atol)
