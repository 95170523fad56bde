"""Hypotheses about the bundled induction model, after the original induction experiments.

The claim being tested: layer-1 induction heads predict the repeated segment.
Their query reads the current token, their key reads the previous token
through the previous-token head, and their value reads the token to copy
(the embedding). Each hypothesis claims part of that story with exact
samplers and lets everything it does not claim be resampled; the naive one
claims too little. Scored with next-token loss at the induction positions.
"""

from __future__ import annotations

from typing import Optional

from hypotheses.nodes import Hypothesis, Node


def _roles(roles: Optional[dict]) -> dict:
    if roles is None:
        from hypotheses.cases.induction.model import heads

        roles = heads()
    return roles


def _induction(roles, children=(), name="induction heads") -> Node:
    return Node(name, [f"output <- {h}" for h in roles["induction"]], children=tuple(children))


def induction_heads_only(roles=None) -> Hypothesis:
    """Only the induction heads' outputs matter (all their inputs exact); every other path is resampled."""
    r = _roles(roles)
    return Hypothesis(Node("output", children=[_induction(r)]), name="induction heads only")


def value_from_embeddings(roles=None) -> Hypothesis:
    """The induction heads' value input is the token embedding; q and k as in the model."""
    r = _roles(roles)
    kids = [Node("values are tokens", ".v <- embed"), Node("query", ".q"), Node("key", ".k")]
    return Hypothesis(Node("output", children=[_induction(r, kids)]), name="V: token embeddings")


def query_from_embeddings(roles=None) -> Hypothesis:
    """The induction heads' query input is the current token's embedding."""
    r = _roles(roles)
    kids = [Node("query is the token", ".q <- embed"), Node("key", ".k"), Node("value", ".v")]
    return Hypothesis(Node("output", children=[_induction(r, kids)]), name="Q: token embeddings")


def key_from_previous_token_head(roles=None) -> Hypothesis:
    """The induction heads' key input is the previous-token head's output (which reads the previous token)."""
    r = _roles(roles)
    prev = [Node("previous-token head", [f".k <- {h}" for h in r["previous_token"]])]
    kids = prev + [Node("query", ".q"), Node("value", ".v")]
    return Hypothesis(Node("output", children=[_induction(r, kids)]), name="K: previous-token head")


def key_from_layer0_heads(roles=None) -> Hypothesis:
    """Refined K: the key input comes from the layer-0 heads together (previous-token information may be
    spread over several heads), not only from the strongest previous-token head."""
    r = _roles(roles)
    kids = [Node("layer-0 heads", [".k <- head.0.0", ".k <- head.0.1", ".k <- head.0.2", ".k <- head.0.3"]),
            Node("query", ".q"), Node("value", ".v")]
    return Hypothesis(Node("output", children=[_induction(r, kids)]), name="K: all layer-0 heads")


def full_induction(roles=None) -> Hypothesis:
    """All three together: Q and V from the embeddings, K from the previous-token head,
    whose value reads the previous token's embedding and whose position pattern is kept."""
    r = _roles(roles)
    prev = Node("previous-token head", [f".k <- {h}" for h in r["previous_token"]], children=[
        Node("reads the token", ".v <- embed"), Node("attends by position", ".q <- pos_embed"),
        Node("keys by position", ".k <- pos_embed")])
    kids = [Node("query is the token", ".q <- embed"), prev, Node("values are tokens", ".v <- embed")]
    return Hypothesis(Node("output", children=[_induction(r, kids)]), name="induction circuit (Q, K, V)")


def naive_single_head(roles=None) -> Hypothesis:
    """Claims too little: one induction head explains the prediction, its key reads the embeddings directly."""
    r = _roles(roles)
    head = r["induction"][0]
    return Hypothesis(Node("output", children=[Node("one head", f"output <- {head}", children=[
        Node("query", ".q"), Node("value", ".v"), Node("key is the token", ".k <- embed")])]),
        name=f"naive: {head} alone, key from tokens")


ALL = (induction_heads_only, value_from_embeddings, query_from_embeddings, key_from_previous_token_head,
       key_from_layer0_heads, full_induction, naive_single_head)
