"""Interpretation graphs: trees of nodes, each claiming paths of the model.

A `Node` names a claim ("this is the previous-token feature"), says which data
it is indifferent between (its sampler), which paths of the model compute it
(its correspondence), and what its unclaimed inputs are resampled from (its
other-inputs sampler and policy). A `Hypothesis` is the root node plus
defaults. Both are frozen values: edits (`replace_node`, `without_node`)
return new trees, so hypotheses can be hashed, compared, saved and reused.

Checks that need no model run here (unique names, the root claims the output,
child paths extend the parent's, no path claimed twice, shared groups agree);
checks against a model run when the hypothesis is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Optional, Sequence, Union

from scrub.errors import HypothesisError

from hypotheses.paths import Path, parse_path
from hypotheses.samplers import SAMPLER_TYPES, Exact, Sampler, Shared, Unconditional, base

POLICIES = ("shared", "independent")
PathLike = Union[str, Path]


@dataclass(frozen=True)
class Node:
    """One interpretation node.

    paths: model paths this node claims; absolute (`output <- head.1.5`) or
        relative to each of the parent's paths (`.k <- head.0.0`). The root
        claims `output`.
    sampler: how this node's datum is drawn relative to its parent's.
    children: nodes whose paths extend this node's paths.
    other_inputs: how the datum for this node's unclaimed inputs is drawn
        (relative to this node's datum).
    policy: "shared" (one other-inputs draw for all unclaimed inputs, the
        original method) or "independent" (a fresh draw per unclaimed input
        edge, which exposes parts that cancel); None inherits the hypothesis'.
    """

    name: str
    paths: tuple[PathLike, ...] = ("output",)
    sampler: Sampler = field(default_factory=Exact)
    children: tuple["Node", ...] = ()
    other_inputs: Sampler = field(default_factory=Unconditional)
    policy: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise HypothesisError(f"every node needs a non-empty name; got {self.name!r}.")
        paths = (self.paths,) if isinstance(self.paths, (str, Path)) else tuple(self.paths)
        children = tuple(self.children)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "children", children)
        if not paths:
            raise HypothesisError(f"node {self.name!r} claims no paths; give it at least one, e.g. 'output <- head.1.5'.")
        for s, what in ((self.sampler, "sampler"), (self.other_inputs, "other_inputs")):
            if not isinstance(s, SAMPLER_TYPES):
                raise HypothesisError(f"node {self.name!r}: {what} must be one of exact(), unconditional(), "
                                      f"agree(feature), shared(group, sampler); got {s!r}.")
        if isinstance(self.other_inputs, Shared):
            raise HypothesisError(f"node {self.name!r}: other_inputs cannot be shared(); share node samplers instead.")
        for c in children:
            if not isinstance(c, Node):
                raise HypothesisError(f"node {self.name!r}: children must be Nodes, got {type(c).__name__}.")
        if self.policy is not None and self.policy not in POLICIES:
            raise HypothesisError(f"node {self.name!r}: policy={self.policy!r}; use one of {POLICIES}.")

    @property
    def is_leaf(self) -> bool:
        return not self.children


@dataclass(frozen=True)
class NodeInfo:
    """A node in context: its parent, depth and absolute paths."""

    node: Node
    parent: Optional[str]
    depth: int
    paths: tuple[Path, ...]
    policy: str


@dataclass(frozen=True)
class Hypothesis:
    """An interpretation graph (the root node) with run-wide defaults."""

    root: Node
    name: str = "hypothesis"
    policy: str = "shared"

    def __post_init__(self):
        if not isinstance(self.root, Node):
            raise HypothesisError(f"Hypothesis needs a root Node, got {type(self.root).__name__}.")
        if self.policy not in POLICIES:
            raise HypothesisError(f"hypothesis {self.name!r}: policy={self.policy!r}; use one of {POLICIES}.")
        _check(self)

    # --- navigation --------------------------------------------------------
    def infos(self) -> dict[str, NodeInfo]:
        """Every node by name, in depth-first order, with absolute paths."""
        out: dict[str, NodeInfo] = {}

        def visit(node: Node, parent: Optional[NodeInfo], depth: int) -> None:
            where = f"node {node.name!r}"
            if parent is None:
                paths = tuple(parse_path(p, None, where) for p in node.paths)
            else:
                paths = tuple(_resolve(p, parent, where) for p in node.paths)
                paths = tuple(dict.fromkeys(p for group in paths for p in group))
            policy = node.policy or (parent.policy if parent else self.policy)
            info = NodeInfo(node, parent.node.name if parent else None, depth, paths, policy)
            if node.name in out:
                raise HypothesisError(f"two nodes are named {node.name!r}; node names must be unique "
                                      "(a node used twice makes the graph a DAG, not a tree).")
            out[node.name] = info
            for child in node.children:
                visit(child, info, depth + 1)

        visit(self.root, None, 0)
        return out

    def node(self, name: str) -> Node:
        infos = self.infos()
        if name not in infos:
            from scrub.errors import did_you_mean

            raise HypothesisError(f"hypothesis {self.name!r} has no node {name!r}.{did_you_mean(name, infos)}")
        return infos[name].node

    def __iter__(self) -> Iterator[Node]:
        return (i.node for i in self.infos().values())

    # --- edits return new hypotheses ----------------------------------------
    def replace_node(self, name: str, **changes) -> "Hypothesis":
        self.node(name)
        return replace(self, root=_map(self.root, name, lambda n: replace(n, **changes)))

    def without_node(self, name: str) -> "Hypothesis":
        """Drop a node and its subtree (its paths become unclaimed)."""
        if name == self.root.name:
            raise HypothesisError("cannot remove the root node; replace the hypothesis instead.")
        self.node(name)

        def prune(n: Node) -> Node:
            return replace(n, children=tuple(prune(c) for c in n.children if c.name != name))

        return replace(self, root=prune(self.root))

    def renamed(self, name: str) -> "Hypothesis":
        return replace(self, name=name)

    def __str__(self) -> str:
        lines = [f"Hypothesis {self.name!r} (policy: {self.policy})"]
        for info in self.infos().values():
            n = info.node
            extra = "" if n.is_leaf else f", other inputs: {n.other_inputs}"
            if info.policy != self.policy:
                extra += f", policy: {info.policy}"
            lines.append("  " * (info.depth + 1) + f"{n.name} [{n.sampler}{extra}]: " + "; ".join(map(str, info.paths)))
        return "\n".join(lines)


def _resolve(p: PathLike, parent: NodeInfo, where: str) -> tuple[Path, ...]:
    """Absolute paths for one entry of a child's `paths`."""
    if isinstance(p, Path) or (isinstance(p, str) and p.strip().startswith("output")):
        return (parse_path(p, None, where),)
    return tuple(parse_path(p, pp, where) for pp in parent.paths)


def _map(node: Node, name: str, fn) -> Node:
    if node.name == name:
        return fn(node)
    return replace(node, children=tuple(_map(c, name, fn) for c in node.children))


def _check(h: Hypothesis) -> None:
    infos = h.infos()
    root = infos[h.root.name]
    if root.paths != (parse_path("output"),):
        raise HypothesisError(f"the root node {h.root.name!r} must claim exactly 'output' (it claims "
                              f"{[str(p) for p in root.paths]}); put other claims in child nodes.")
    owner: dict[Path, str] = {}
    for info in infos.values():
        for p in info.paths:
            if p in owner:
                raise HypothesisError(f"path {str(p)!r} is claimed by two nodes, {owner[p]!r} and "
                                      f"{info.node.name!r}; each path may be claimed by one node only.")
            owner[p] = info.node.name
        if info.parent is not None:
            parent_paths = infos[info.parent].paths
            for p in info.paths:
                if not any(p.extends(pp) for pp in parent_paths):
                    raise HypothesisError(
                        f"node {info.node.name!r} claims {str(p)!r}, which does not extend any path of its parent "
                        f"{info.parent!r} ({[str(q) for q in parent_paths]}). A child's paths continue its "
                        "parent's: write it relative to the parent (e.g. '.k <- head.0.0'), or move the node.")
    groups: dict[str, tuple[str, Sampler]] = {}
    for info in infos.values():
        s = info.node.sampler
        if isinstance(s, Shared):
            if s.group in groups and groups[s.group][1] != base(s):
                first, other = groups[s.group]
                raise HypothesisError(f"shared group {s.group!r}: node {first!r} draws with {other} but node "
                                      f"{info.node.name!r} with {base(s)}; nodes sharing a draw need the same sampler.")
            groups.setdefault(s.group, (info.node.name, base(s)))


def node(name: str, paths: Union[PathLike, Sequence[PathLike]], sampler: Optional[Sampler] = None,
         children: Sequence[Node] = (), **kw) -> Node:
    """Shorthand for `Node(...)` accepting a single path string."""
    return Node(name, paths, sampler or Exact(), tuple(children), **kw)
