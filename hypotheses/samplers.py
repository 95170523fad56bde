"""Samplers: which data a node is indifferent between, relative to its parent's datum.

    exact()              the parent's datum itself
    unconditional()      any datum, uniformly
    agree(feature)       uniform over data whose feature equals the parent datum's
    shared(group, s)     every node naming `group` receives one common draw of `s`

`agree(..., if_empty=...)` chooses what happens when no datum of the sampling
pool agrees (possible when reference data come from outside the pool):
"error" (default) raises a SamplingError naming the node and the value;
"parent" uses the parent's datum; "unconditional" draws from the whole pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from scrub.errors import HypothesisError

from hypotheses.features import Feature

IF_EMPTY = ("error", "parent", "unconditional")


@dataclass(frozen=True)
class Exact:
    def __str__(self) -> str:
        return "exact"


@dataclass(frozen=True)
class Unconditional:
    def __str__(self) -> str:
        return "unconditional"


@dataclass(frozen=True)
class Agree:
    feature: Feature
    if_empty: str = "error"

    def __post_init__(self):
        if not isinstance(self.feature, Feature):
            raise HypothesisError(f"agree() needs a Feature (e.g. token_at(3) or from_datum(fn)); "
                                  f"got {type(self.feature).__name__}.")
        if self.if_empty not in IF_EMPTY:
            raise HypothesisError(f"agree(if_empty={self.if_empty!r}): use one of {IF_EMPTY}.")

    def __str__(self) -> str:
        return f"agree({self.feature.name})"


@dataclass(frozen=True)
class Shared:
    group: str
    sampler: "Sampler"

    def __post_init__(self):
        if isinstance(self.sampler, Shared):
            raise HypothesisError(f"shared({self.group!r}) wraps another shared sampler; wrap the plain sampler.")
        if not self.group:
            raise HypothesisError("shared() needs a non-empty group name.")

    def __str__(self) -> str:
        return f"shared({self.group}: {self.sampler})"


Sampler = Union[Exact, Unconditional, Agree, Shared]
SAMPLER_TYPES = (Exact, Unconditional, Agree, Shared)


def exact() -> Exact:
    return Exact()


def unconditional() -> Unconditional:
    return Unconditional()


def agree(feature: Feature, if_empty: str = "error") -> Agree:
    return Agree(feature, if_empty)


def shared(group: str, sampler: Sampler) -> Shared:
    return Shared(group, sampler)


def base(sampler: Sampler) -> Sampler:
    """The sampler without its sharing wrapper."""
    return sampler.sampler if isinstance(sampler, Shared) else sampler
