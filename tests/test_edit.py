"""Tree edits (one facility: map, select, replace_node, add_children, prune) and structured errors."""

import pytest

from hypotheses import Hypothesis, Node, agree, token_at
from hypotheses.paths import parse_path
from hypotheses.samplers import Exact, Unconditional
from scrub.errors import HypothesisError


def tree():
    return Hypothesis(Node("out", children=[
        Node("a", "output <- head.1.0", agree(token_at(0)), children=[Node("ak", ".k <- head.0.1")]),
        Node("b", "output <- head.1.1")]), name="h")


def test_map_rebuilds_every_node_children_first_and_keeps_the_rest():
    seen = []
    h = tree().map(lambda n: seen.append(n.name) or n)
    assert seen == ["ak", "a", "b", "out"] and h == tree()
    flipped = tree().map(lambda n: Node(n.name, n.paths, n.sampler.unconditioned(), n.children))
    assert isinstance(flipped.node("a").sampler, Unconditional) and isinstance(flipped.node("b").sampler, Exact)


def test_select_replace_add_prune():
    h = tree()
    assert [n.name for n in h.select(lambda n: n.is_leaf)] == ["ak", "b"]
    assert h.replace_node("b", paths=("output <- head.1.2",)).node("b").paths == ("output <- head.1.2",)
    added = h.add_children({"b": [Node("bq", ".q")]}, name="more")
    assert added.name == "more" and [c.name for c in added.node("b").children] == ["bq"]
    assert [n.name for n in h.prune(lambda n: n.name == "a")] == ["out", "b"]
    assert [n.name for n in h.without_node("ak")] == ["out", "a", "b"]
    with pytest.raises(HypothesisError, match="cannot remove the root"):
        h.prune(lambda n: n.name == "out")
    with pytest.raises(HypothesisError, match="no node 'c' to add children to"):
        h.add_children({"c": [Node("x", ".q")]})


def test_errors_name_the_node_and_field():
    with pytest.raises(HypothesisError) as info:
        Hypothesis(Node("out", children=[Node("a", "output <- head.1.0"), Node("a", "output <- head.1.1")]))
    assert (info.value.node, info.value.field, info.value.duplicate) == ("a", "name", True)
    with pytest.raises(HypothesisError) as info:
        Hypothesis(Node("out", children=[Node("a", "output <- head.1.0", children=[Node("k", "output <- head.1.1")])]))
    assert (info.value.node, info.value.field) == ("k", "paths")


def test_the_language_knows_no_port_names():
    """A port is a last dot-component that is a name; which ports exist is the model graph's business."""
    p = parse_path("output <- head.1.5.k <- head.0.0")
    assert (p.hops[1].site, p.hops[1].port) == ("head.1.5", "k")
    assert parse_path("output <- mlp.0").hops[1].port is None
    q = parse_path(".gate <- a", parse_path("output <- mlp.0"))
    assert (q.hops[1].site, q.hops[1].port, q.hops[2].site) == ("mlp.0", "gate", "a")
