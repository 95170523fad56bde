"""Editing interpretation trees: the one way hypotheses are rebuilt.

Nodes are frozen, so an edit builds a new tree. `map_tree` is the primitive
(children first, so `fn` sees each node with its children already mapped);
`Hypothesis.map`, `select`, `replace_node`, `add_children`, `prune` and
`without_node` are built on it, and every place that edits hypotheses (the
cancel-out report restoring components, interchange interventions dropping
conditioning) uses them instead of writing its own recursion.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable


def map_tree(node, fn: Callable):
    """`fn` applied to every node of the tree under `node`, children first."""
    children = tuple(map_tree(c, fn) for c in node.children)
    if children != node.children:
        node = replace(node, children=children)
    return fn(node)
