"""Samplers: which data a node is indifferent between, relative to its parent's datum.

    exact()              the parent's datum itself
    unconditional()      any datum, uniformly
    agree(feature)       uniform over data whose feature equals the parent datum's
    shared(group, s)     every node naming `group` receives one common draw of `s`

Each sampler is a class that draws for itself (`draw`), says whether it
conditions on the parent's datum, and reads and writes itself in spec files;
all are registered in `SAMPLERS`. A new sampler is one subclass and one
registration line (docs/contributing.md).

`agree(..., if_empty=...)` chooses what happens when no datum of the sampling
pool agrees (possible when reference data come from outside the pool):
"error" (default) raises a SamplingError naming the node and the value;
"parent" uses the parent's datum; "unconditional" draws from the whole pool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Optional

import numpy as np

from scrub.errors import HypothesisError, SamplingError

from hypotheses.features import FEATURES, Feature, describe_value
from hypotheses.registry import Registry, SpecValue

IF_EMPTY = ("error", "parent", "unconditional")


class Pool:
    """The data a draw may pick from (the first `n_pool` of `data`), with the agreement classes of each
    feature computed once and kept for every draw that needs them."""

    def __init__(self, data, n_pool: int):
        self.data, self.n_pool = data, n_pool
        self._classes: dict = {}

    def classes(self, feature: Feature) -> "AgreementClasses":
        if feature not in self._classes:
            self._classes[feature] = AgreementClasses(feature, self.data, self.n_pool)
        return self._classes[feature]

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n uniform draws from the pool (the agreement draw with one class, so a constant feature
        draws exactly these indices)."""
        return np.minimum((rng.random(n) * self.n_pool).astype(np.int64), self.n_pool - 1)


class AgreementClasses:
    """Per feature: class id of every datum, and the pool sorted by class."""

    def __init__(self, feature: Feature, data, n_pool: int):
        self.feature = feature
        self.ids = feature.values(data)
        pool_ids = self.ids[:n_pool]
        self.order = np.argsort(pool_ids, kind="stable")
        n_classes = int(self.ids.max()) + 1
        self.counts = np.bincount(pool_ids, minlength=n_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def draw(self, parent: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform draws within each parent's class; also a mask of parents whose class is empty."""
        cls = self.ids[parent]
        size = self.counts[cls]
        empty = size == 0
        u = rng.random(len(parent))
        offset = np.minimum((u * size).astype(np.int64), np.maximum(size - 1, 0))
        picked = self.order[np.minimum(self.starts[cls] + offset, len(self.order) - 1)]
        return picked, empty


class Sampler:
    """A way to draw a node's datum relative to its parent's.

    conditions_on_parent: the draw depends on the parent's datum (False: the
    parent is ignored, so the draw is shared by every parent). exact: nothing is
    drawn; the node gets its parent's datum."""

    spec_name: ClassVar[str] = ""
    conditions_on_parent: ClassVar[bool] = True
    exact: ClassVar[bool] = False

    def draw(self, parent: np.ndarray, rng: np.random.Generator, pool: Pool, node: Optional[str]) -> np.ndarray:
        """One index into the pool per parent datum (`parent`: the parent's indices)."""
        raise NotImplementedError(f"{type(self).__name__} does not draw")

    @property
    def base(self) -> "Sampler":
        """The sampler without a sharing wrapper."""
        return self

    @property
    def shared_group(self) -> Optional[str]:
        """The group whose nodes receive one common draw (None: not shared)."""
        return None

    @property
    def agreement_feature(self) -> Optional[Feature]:
        """The feature this sampler agrees on, if any (interchange interventions predict from it)."""
        return None

    def unconditioned(self) -> "Sampler":
        """This sampler with its conditioning on the parent dropped (used by interchange interventions)."""
        return self

    def to_spec(self) -> Any:
        return self.spec_name

    @classmethod
    def from_spec(cls, spec: SpecValue) -> "Sampler":
        if not isinstance(spec.value, str):
            raise spec.error(f"the {cls.spec_name} sampler takes no settings; write it as '{cls.spec_name}'.")
        return cls()


SAMPLERS: Registry = Registry("sampler")


@SAMPLERS.register("exact")
@dataclass(frozen=True)
class Exact(Sampler):
    """The parent's datum itself (draws nothing)."""

    exact: ClassVar[bool] = True

    def draw(self, parent, rng, pool, node):
        return parent

    def __str__(self) -> str:
        return "exact"


@SAMPLERS.register("unconditional")
@dataclass(frozen=True)
class Unconditional(Sampler):
    """Any datum of the pool, uniformly."""

    conditions_on_parent: ClassVar[bool] = False

    def draw(self, parent, rng, pool, node):
        return pool.uniform(rng, len(parent))

    def __str__(self) -> str:
        return "unconditional"


@SAMPLERS.register("agree")
@dataclass(frozen=True)
class Agree(Sampler):
    """Uniform over the data whose feature equals the parent datum's (`{agree: FEATURE, if_empty: ...}`)."""

    feature: Feature
    if_empty: str = "error"

    KEYS: ClassVar[tuple] = ("agree", "if_empty")

    def __post_init__(self):
        if not isinstance(self.feature, Feature):
            raise HypothesisError(f"agree() needs a Feature (e.g. token_at(3) or from_datum(fn)); "
                                  f"got {type(self.feature).__name__}.")
        if self.if_empty not in IF_EMPTY:
            raise HypothesisError(f"agree(if_empty={self.if_empty!r}): use one of {IF_EMPTY}.")

    def draw(self, parent, rng, pool, node):
        picked, empty = pool.classes(self.feature).draw(parent, rng)
        if not empty.any():
            return picked
        if self.if_empty == "parent":
            return np.where(empty, parent, picked)
        if self.if_empty == "unconditional":
            return np.where(empty, rng.integers(0, pool.n_pool, size=len(parent)), picked)
        first = int(parent[np.argmax(empty)])
        raise SamplingError(
            f"node {node!r}: no datum in the sampling pool agrees on feature {self.feature.name!r} with value "
            f"{describe_value(pool.data, self.feature, first)} (the parent datum at index {first}); "
            f"{int(empty.sum())} reference data are affected. Add such data to the pool, or choose a fallback with "
            "agree(feature, if_empty='parent' or 'unconditional').", node=node, field="sampler")

    @property
    def agreement_feature(self) -> Optional[Feature]:
        return self.feature

    def unconditioned(self) -> Sampler:
        return Unconditional()

    def to_spec(self) -> Any:
        out = {"agree": self.feature.to_spec()}
        if self.if_empty != "error":
            out["if_empty"] = self.if_empty
        return out

    @classmethod
    def from_spec(cls, spec: SpecValue) -> "Agree":
        spec.mapping(cls.KEYS, "an agree sampler")
        if_empty = spec.get("if_empty", "error")
        if if_empty not in IF_EMPTY:
            raise spec.error(f"if_empty must be one of {', '.join(IF_EMPTY)}.", "if_empty")
        return cls(FEATURES.parse(spec.at("agree")), if_empty)

    def __str__(self) -> str:
        return f"agree({self.feature.name})"


@SAMPLERS.register("shared")
@dataclass(frozen=True)
class Shared(Sampler):
    """One common draw of `sampler` for every node naming `group` (`{shared: GROUP, sampler: ...}`)."""

    group: str
    sampler: Sampler

    KEYS: ClassVar[tuple] = ("shared", "sampler")

    def __post_init__(self):
        if not isinstance(self.sampler, Sampler):
            raise HypothesisError(f"shared({self.group!r}, ...) needs a sampler, got {type(self.sampler).__name__}.")
        if isinstance(self.sampler, Shared):
            raise HypothesisError(f"shared({self.group!r}) wraps another shared sampler; wrap the plain sampler.")
        if not isinstance(self.group, str) or not self.group:
            raise HypothesisError("shared() needs a non-empty group name.")

    @property
    def conditions_on_parent(self) -> bool:  # type: ignore[override]
        return self.sampler.conditions_on_parent

    @property
    def exact(self) -> bool:  # type: ignore[override]
        return self.sampler.exact

    @property
    def base(self) -> Sampler:
        return self.sampler

    @property
    def shared_group(self) -> Optional[str]:
        return self.group

    @property
    def agreement_feature(self) -> Optional[Feature]:
        return self.sampler.agreement_feature

    def draw(self, parent, rng, pool, node):
        return self.sampler.draw(parent, rng, pool, node)

    def unconditioned(self) -> Sampler:
        return replace(self, sampler=self.sampler.unconditioned())

    def to_spec(self) -> Any:
        return {"shared": self.group, "sampler": self.sampler.to_spec()}

    @classmethod
    def from_spec(cls, spec: SpecValue) -> "Shared":
        value = spec.mapping(cls.KEYS, "a shared sampler")
        if set(value) != {"shared", "sampler"} or not isinstance(value["shared"], str):
            raise spec.error("a shared sampler is {shared: GROUP_NAME, sampler: SAMPLER}.")
        return cls(value["shared"], SAMPLERS.parse(spec.at("sampler")))

    def __str__(self) -> str:
        return f"shared({self.group}: {self.sampler})"


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
    return sampler.base
