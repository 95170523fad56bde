"""Component rewrites: a node states that the site it claims computes an estimate f of the datum.

    Node("0.0 writes phi", "output <- head.1.0@0 <- ... <- head.0.0@1", agree(P1),
         rewrite=rewrite(function_estimate(phi)))

On that node's copy the site's value becomes f(x_n) + (site(y) - f(y)): the
estimate on the node's datum plus the residual the estimate leaves, computed on
a datum y chosen by `residual`:

    "resample"  (default) y is drawn like any unclaimed input of the parent:
                the parent's other-inputs datum (shared policy) or a draw of
                its other-inputs sampler for this copy (independent policy);
    "exact"     y = x_n: the residual is kept exact (the value is the site's
                own, so the claim is only that f is a decomposition);
    "drop"      no residual: the value is f(x_n) alone;
    a sampler   y drawn by that sampler relative to x_n (`unconditional()`:
                a fresh datum of its own, as the original paren work did).

An estimate is called as `f(batch, model)` on a `scrub.Dataset` of the data it
is evaluated on and the model being scrubbed (so it may read weights), and
returns the site's output `(batch, pos, d)`, or `(batch, d)` for the same value
at every position. Estimate kinds are registered in `ESTIMATES`: `function`
(an importable function) and `zero` (f = 0; with residual "drop" this is zero
ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Union

import torch

from scrub.errors import HypothesisError

from hypotheses.registry import Registry, SpecValue, callable_object
from hypotheses.samplers import SAMPLERS, Exact, Sampler

RESIDUAL_MODES = ("resample", "exact", "drop")


@dataclass(frozen=True)
class Estimate:
    """A named function of (batch, model) giving a site's output; equality is by name, ref and kind."""

    name: str
    fn: Callable[[Any, Any], Any] = field(compare=False, repr=False)
    ref: Optional[str] = None  # import path, for spec files
    kind: str = "function"

    def __call__(self, batch, model) -> torch.Tensor:
        return self.fn(batch, model)

    def __str__(self) -> str:
        return self.name

    def to_spec(self) -> Any:
        return ESTIMATES[self.kind].to_spec(self)


ESTIMATES: Registry = Registry("estimate")


class FunctionEstimate:
    """An importable function f(batch, model) returning the site's output `{function: pkg.module.fn}`."""

    KEYS: ClassVar[tuple] = ("function", "name")

    @staticmethod
    def from_spec(spec: SpecValue) -> Estimate:
        spec.mapping(FunctionEstimate.KEYS, "a function estimate")
        fn = callable_object(spec, "function", what="estimate function")
        return function_estimate(fn, name=spec.typed("name", str, "a string", None), ref=spec.value["function"])

    @staticmethod
    def to_spec(e: Estimate) -> Any:
        if not e.ref:
            raise HypothesisError(f"estimate {e.name!r} has no import path (a lambda or a local function?); "
                                  "define it as a module-level function so a spec can name it.")
        out = {"function": e.ref}
        if e.name != e.ref.rsplit(".", 1)[-1]:
            out["name"] = e.name
        return out


class ZeroEstimate:
    """f = 0: with residual 'drop' the site is zero-ablated; with 'resample' its whole value is resampled."""

    @staticmethod
    def from_spec(spec: SpecValue) -> Estimate:
        if spec.value != "zero":
            raise spec.error("the zero estimate takes no settings; write it as 'zero'.")
        return zero()

    @staticmethod
    def to_spec(e: Estimate) -> Any:
        return "zero"


ESTIMATES.register("function", FunctionEstimate)
ESTIMATES.register("zero", ZeroEstimate)


def function_estimate(fn: Callable, name: Optional[str] = None, ref: Optional[str] = None) -> Estimate:
    """An estimate from a function `fn(batch, model)`; `ref` defaults to its import path."""
    if not callable(fn):
        raise HypothesisError(f"an estimate needs a function fn(batch, model); got {fn!r}.")
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    ref = ref or (f"{mod}.{qual}" if mod and qual and "<" not in qual else None)
    return Estimate(name or getattr(fn, "__name__", "estimate"), fn, ref, "function")


def _zero(batch, model):
    return torch.zeros(())


def zero() -> Estimate:
    return Estimate("zero", _zero, None, "zero")


@dataclass(frozen=True)
class Rewrite:
    """The claimed site computes `estimate` of the node's datum; `residual` says what happens to the rest
    (see the module doc)."""

    estimate: Estimate
    residual: Union[str, Sampler] = "resample"

    KEYS: ClassVar[tuple] = ("estimate", "residual")

    def __post_init__(self):
        if not isinstance(self.estimate, Estimate):
            raise HypothesisError(f"rewrite() needs an Estimate (function_estimate(fn) or zero()); "
                                  f"got {type(self.estimate).__name__}.", field="rewrite")
        residual = self.residual
        if isinstance(residual, Exact):
            residual = "exact"  # the exact sampler draws x_n: the residual kept exact
        if isinstance(residual, Sampler):
            if residual.shared_group is not None:
                raise HypothesisError("a rewrite's residual cannot be shared(); give it a plain sampler.",
                                      field="rewrite")
        elif residual not in RESIDUAL_MODES:
            raise HypothesisError(f"rewrite residual={residual!r}; use one of {RESIDUAL_MODES} or a sampler "
                                  "such as unconditional().", field="rewrite")
        object.__setattr__(self, "residual", residual)

    @property
    def residual_sampler(self) -> Optional[Sampler]:
        """The sampler drawing the residual's datum, when the residual has a draw of its own."""
        return self.residual if isinstance(self.residual, Sampler) else None

    def __str__(self) -> str:
        return f"rewrite {self.estimate} (residual: {self.residual})"

    def to_spec(self) -> dict:
        out: dict = {"estimate": self.estimate.to_spec()}
        if self.residual != "resample":
            out["residual"] = self.residual if isinstance(self.residual, str) else self.residual.to_spec()
        return out

    @classmethod
    def from_spec(cls, spec: SpecValue) -> "Rewrite":
        value = spec.mapping(cls.KEYS, "a rewrite")
        if "estimate" not in value:
            raise spec.error("a rewrite needs an 'estimate': zero, or {function: package.module.fn}.")
        estimate = ESTIMATES.parse(spec.at("estimate"))
        residual = value.get("residual", "resample")
        if not (isinstance(residual, str) and residual in RESIDUAL_MODES):
            residual = SAMPLERS.parse(spec.at("residual"))
        try:
            return cls(estimate, residual)
        except HypothesisError as exc:
            raise spec.error(exc.message, "residual") from None


def rewrite(estimate: Estimate, residual: Union[str, Sampler] = "resample") -> Rewrite:
    return Rewrite(estimate, residual)
