"""The hypothesis language: interpretation nodes, samplers, features and paths.

    from hypotheses import Hypothesis, Node, agree, token_at
    h = Hypothesis(Node("out", children=[
            Node("induction", ["output <- head.1.5", "output <- head.1.6"], children=[
                Node("prev token", ".k <- head.0.0", agree(token_at(-2)))])]))
"""

from hypotheses.features import (Feature, column, constant, from_batch, from_datum, identity, label,
                                 token_at, tokens_at)
from hypotheses.nodes import Hypothesis, Node, NodeInfo, node
from hypotheses.paths import Hop, Path, parse_path
from hypotheses.positions import per_position
from hypotheses.rewrites import Estimate, Rewrite, function_estimate, rewrite, zero
from hypotheses.samplers import Agree, Exact, Shared, Unconditional, agree, exact, shared, unconditional

__all__ = [
    "Hypothesis", "Node", "NodeInfo", "node",
    "Path", "Hop", "parse_path",
    "Feature", "token_at", "tokens_at", "label", "identity", "constant", "column", "from_batch", "from_datum",
    "Exact", "Unconditional", "Agree", "Shared", "exact", "unconditional", "agree", "shared",
    "Rewrite", "Estimate", "rewrite", "function_estimate", "zero", "per_position",
]
