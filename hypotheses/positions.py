"""Per-position helpers: "each position of this input with its own feature", in one line.

    per_position(range(42), "2.1 reads position {i}", "*@{i}", lambda i: agree(horizon_class(i)))

gives 42 nodes; `{i}` in the name and the paths stands for the position, and
the sampler (or any other node setting) may be a function of the position.
The nodes remember the group they came from, so a spec file writes them as one
`each_position:` entry (scrub.app.spec), after checking that expanding that
entry gives back exactly these nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence, Union

from scrub.errors import HypothesisError

from hypotheses.nodes import Node
from hypotheses.samplers import Sampler

PLACEHOLDER = "{i}"


@dataclass(frozen=True, eq=False)
class PositionGroup:
    """The nodes `make(i)` for each of `positions` (identity, not value, makes two nodes one group)."""

    make: Callable[[int], Node]
    positions: tuple[int, ...]


def fill(text: str, i: int) -> str:
    return text.replace(PLACEHOLDER, str(i))


def per_position(positions: Iterable[int], name: str, paths: Union[str, Sequence[str]],
                 sampler: Union[Sampler, Callable[[int], Sampler], None] = None, **node_settings) -> tuple[Node, ...]:
    """One node per position `i`: `name` and `paths` with `{i}` replaced by `i`; `sampler` and every other
    Node setting (`other_inputs`, `rewrite`, `policy`) either fixed or a function of `i`."""
    positions = tuple(int(p) for p in positions)
    if not positions:
        raise HypothesisError(f"per_position({name!r}): no positions given.")
    if len(set(positions)) != len(positions):
        raise HypothesisError(f"per_position({name!r}): positions {list(positions)} repeat a position.")
    if PLACEHOLDER not in name:
        raise HypothesisError(f"per_position: the name {name!r} needs '{PLACEHOLDER}' so that each node's name "
                              "is unique, e.g. '2.1 reads position {i}'.")
    path_list = [paths] if isinstance(paths, str) else list(paths)

    def setting(value, i):
        return value(i) if callable(value) and not isinstance(value, (Sampler, Node)) else value

    def make(i: int) -> Node:
        kw = {k: setting(v, i) for k, v in node_settings.items()}
        if sampler is not None:
            kw["sampler"] = setting(sampler, i)
        return Node(fill(name, i), tuple(fill(p, i) for p in path_list), **kw)

    group = PositionGroup(make, positions)
    return tuple(replace(make(i), origin=(group, i)) for i in positions)
