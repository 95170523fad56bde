"""Interpretation graphs: trees of nodes, each claiming paths of the model.

A `Node` names a claim ("this is the previous-token feature"), says which data
it is indifferent between (its sampler), which paths of the model compute it
(its correspondence), and what its unclaimed inputs are resampled from (its
other-inputs sampler and policy). A `Hypothesis` is the root node plus
defaults. Both are frozen values: edits return new trees (`hypotheses.edit`:
`map`, `select`, `replace_node`, `add_children`, `prune`, `without_node`), so
hypotheses can be hashed, compared, saved and reused.

Checks that need no model run here (unique names, the root claims the output,
child paths extend the parent's, no path claimed twice, shared groups agree);
checks against a model run when the hypothesis is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Optional, Sequence, Union

from scrub.errors import HypothesisError, did_you_mean

from hypotheses import edit
from hypotheses.paths import Path, parse_path
from hypotheses.rewrites import Rewrite
from hypotheses.samplers import Exact, Sampler, Unconditional

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
    rewrite: the claimed sites compute an estimate of this node's datum, with
        the residual dropped, kept or resampled (`hypotheses.rewrites`); only
        on leaves.
    origin: where a generated node came from (`hypotheses.positions.per_position`),
        so spec files can write the group in one entry; not part of equality.
    """

    name: str
    paths: tuple[PathLike, ...] = ("output",)
    sampler: Sampler = field(default_factory=Exact)
    children: tuple["Node", ...] = ()
    other_inputs: Sampler = field(default_factory=Unconditional)
    policy: Optional[str] = None
    rewrite: Optional[Rewrite] = None
    origin: Optional[object] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise HypothesisError(f"every node needs a non-empty name; got {self.name!r}.", field="name")
        where = dict(node=self.name)
        paths = (self.paths,) if isinstance(self.paths, (str, Path)) else _tuple(self.paths)
        if paths is None or not all(isinstance(p, (str, Path)) for p in paths):
            raise HypothesisError(f"node {self.name!r}: paths must be a path string such as 'output <- head.1.5' or a "
                                  f"list of them; got {self.paths!r}. (Node(name, paths, sampler, children, ...): "
                                  "the second argument is the paths.)", field="paths", **where)
        children = (self.children,) if isinstance(self.children, Node) else _tuple(self.children)
        if children is None:
            raise HypothesisError(f"node {self.name!r}: children must be a list of Nodes; got {self.children!r}.",
                                  field="children", **where)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "children", children)
        if not paths:
            raise HypothesisError(f"node {self.name!r} claims no paths; give it at least one, e.g. 'output <- head.1.5'.",
                                  field="paths", **where)
        for s, what in ((self.sampler, "sampler"), (self.other_inputs, "other_inputs")):
            if not isinstance(s, Sampler):
                raise HypothesisError(f"node {self.name!r}: {what} must be a sampler such as exact(), unconditional(), "
                                      f"agree(feature), shared(group, sampler); got {s!r}.", field=what, **where)
        if self.other_inputs.shared_group is not None:
            raise HypothesisError(f"node {self.name!r}: other_inputs cannot be shared(); share node samplers instead.",
                                  field="other_inputs", **where)
        for c in children:
            if not isinstance(c, Node):
                raise HypothesisError(f"node {self.name!r}: children must be Nodes, got {type(c).__name__}.",
                                      field="children", **where)
        if self.policy is not None and self.policy not in POLICIES:
            raise HypothesisError(f"node {self.name!r}: policy={self.policy!r}; use one of {POLICIES}.",
                                  field="policy", **where)
        if self.rewrite is not None:
            if not isinstance(self.rewrite, Rewrite):
                raise HypothesisError(f"node {self.name!r}: rewrite must be a Rewrite (hypotheses.rewrite(...)); "
                                      f"got {type(self.rewrite).__name__}.", field="rewrite", **where)
            if children:
                raise HypothesisError(f"node {self.name!r} rewrites its sites as an estimate of its datum, so it "
                                      "cannot also have children claiming parts below them; claim those parts "
                                      "from a node without a rewrite.", field="rewrite", **where)

    @property
    def is_leaf(self) -> bool:
        return not self.children


def _tuple(value) -> Optional[tuple]:
    """`value` as a tuple, or None when it is not a sequence (a number, None, a mapping)."""
    if isinstance(value, (dict, bytes)) or value is None:
        return None
    try:
        return tuple(value)
    except TypeError:
        return None


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
        if not isinstance(self.name, str):
            raise HypothesisError(f"a hypothesis name must be a string; got {type(self.name).__name__} {self.name!r}.")
        if self.policy not in POLICIES:
            raise HypothesisError(f"hypothesis {self.name!r}: policy={self.policy!r}; use one of {POLICIES}.")
        _check(self)

    # --- navigation --------------------------------------------------------
    def infos(self) -> dict[str, NodeInfo]:
        """Every node by name, in depth-first order, with absolute paths."""
        out: dict[str, NodeInfo] = {}

        def visit(node: Node, parent: Optional[NodeInfo], depth: int) -> None:
            where = f"node {node.name!r}"
            try:
                if parent is None:
                    paths = tuple(parse_path(p, None, where) for p in node.paths)
                else:
                    paths = tuple(_resolve(p, parent, where) for p in node.paths)
                    paths = tuple(dict.fromkeys(p for group in paths for p in group))
            except HypothesisError as exc:
                exc.node, exc.field = exc.node or node.name, exc.field or "paths"
                raise
            policy = node.policy or (parent.policy if parent else self.policy)
            info = NodeInfo(node, parent.node.name if parent else None, depth, paths, policy)
            if node.name in out:
                raise HypothesisError(f"two nodes are named {node.name!r}; node names must be unique "
                                      "(a node used twice makes the graph a DAG, not a tree).",
                                      node=node.name, field="name", duplicate=True)
            out[node.name] = info
            for child in node.children:
                visit(child, info, depth + 1)

        visit(self.root, None, 0)
        return out

    def node(self, name: str) -> Node:
        infos = self.infos()
        if name not in infos:
            raise HypothesisError(f"hypothesis {self.name!r} has no node {name!r}.{did_you_mean(name, infos)}")
        return infos[name].node

    def __iter__(self) -> Iterator[Node]:
        return (i.node for i in self.infos().values())

    # --- edits return new hypotheses (see hypotheses.edit) ----------------------
    def map(self, fn, name: Optional[str] = None) -> "Hypothesis":
        """Every node replaced by `fn(node)`, children first (fn sees the node with its children mapped)."""
        return replace(self, root=edit.map_tree(self.root, fn), name=self.name if name is None else name)

    def select(self, predicate) -> list[Node]:
        """The nodes for which `predicate(node)` holds, in depth-first order."""
        return [n for n in self if predicate(n)]

    def replace_node(self, name: str, **changes) -> "Hypothesis":
        self.node(name)
        return self.map(lambda n: replace(n, **changes) if n.name == name else n)

    def add_children(self, extra: dict, name: Optional[str] = None) -> "Hypothesis":
        """Each node named in `extra` gets those nodes appended to its children."""
        unknown = set(extra) - {n.name for n in self}
        if unknown:
            raise HypothesisError(f"hypothesis {self.name!r} has no node {sorted(unknown)[0]!r} to add children to.")
        return self.map(lambda n: replace(n, children=n.children + tuple(extra.get(n.name, ()))), name)

    def prune(self, predicate) -> "Hypothesis":
        """Drop every non-root node for which `predicate(node)` holds, with its subtree."""
        if predicate(self.root):
            raise HypothesisError("cannot remove the root node; replace the hypothesis instead.")
        return self.map(lambda n: replace(n, children=tuple(c for c in n.children if not predicate(c))))

    def without_node(self, name: str) -> "Hypothesis":
        """Drop a node and its subtree (its paths become unclaimed)."""
        self.node(name)
        return self.prune(lambda n: n.name == name)

    def renamed(self, name: str) -> "Hypothesis":
        return replace(self, name=name)

    def __str__(self) -> str:
        lines = [f"Hypothesis {self.name!r} (policy: {self.policy})"]
        for info in self.infos().values():
            n = info.node
            extra = "" if n.is_leaf else f", other inputs: {n.other_inputs}"
            if n.rewrite is not None:
                extra += f", {n.rewrite}"
            if info.policy != self.policy:
                extra += f", policy: {info.policy}"
            lines.append("  " * (info.depth + 1) + f"{n.name} [{n.sampler}{extra}]: " + "; ".join(map(str, info.paths)))
        return "\n".join(lines)


def _resolve(p: PathLike, parent: NodeInfo, where: str) -> tuple[Path, ...]:
    """Absolute paths for one entry of a child's `paths`."""
    if isinstance(p, Path) or (isinstance(p, str) and p.strip().startswith("output")):
        return (parse_path(p, None, where),)
    return tuple(parse_path(p, pp, where) for pp in parent.paths)


def _check(h: Hypothesis) -> None:
    infos = h.infos()
    root = infos[h.root.name]
    if h.root.rewrite is not None:
        raise HypothesisError(f"the root node {h.root.name!r} cannot have a rewrite (it claims the whole output); "
                              "put the rewrite on a child that claims a site.", node=h.root.name, field="rewrite")
    if root.paths != (parse_path("output"),):
        raise HypothesisError(f"the root node {h.root.name!r} must claim exactly 'output' (it claims "
                              f"{[str(p) for p in root.paths]}); put other claims in child nodes.",
                              node=h.root.name, field="paths")
    owner: dict[Path, str] = {}
    for info in infos.values():
        for p in info.paths:
            if p in owner:
                raise HypothesisError(f"path {str(p)!r} is claimed by two nodes, {owner[p]!r} and "
                                      f"{info.node.name!r}; each path may be claimed by one node only.",
                                      node=info.node.name, field="paths")
            owner[p] = info.node.name
        if info.parent is not None:
            parent_paths = infos[info.parent].paths
            for p in info.paths:
                if not any(p.within(pp) for pp in parent_paths):
                    raise HypothesisError(
                        f"node {info.node.name!r} claims {str(p)!r}, which does not extend any path of its parent "
                        f"{info.parent!r} ({[str(q) for q in parent_paths]}). A child's paths continue its "
                        "parent's: write it relative to the parent (e.g. '.k <- head.0.0'), or repeat the "
                        "parent's hops but the last and continue from there, or move the node.",
                        node=info.node.name, field="paths")
    groups: dict[str, tuple[str, Sampler]] = {}
    for info in infos.values():
        s = info.node.sampler
        if s.shared_group is not None:
            if s.shared_group in groups and groups[s.shared_group][1] != s.base:
                first, other = groups[s.shared_group]
                raise HypothesisError(f"shared group {s.shared_group!r}: node {first!r} draws with {other} but node "
                                      f"{info.node.name!r} with {s.base}; nodes sharing a draw need the same sampler.",
                                      node=info.node.name, field="sampler")
            groups.setdefault(s.shared_group, (info.node.name, s.base))


def node(name: str, paths: Union[PathLike, Sequence[PathLike]], sampler: Optional[Sampler] = None,
         children: Sequence[Node] = (), **kw) -> Node:
    """Shorthand for `Node(...)` accepting a single path string."""
    return Node(name, paths, sampler or Exact(), tuple(children), **kw)
