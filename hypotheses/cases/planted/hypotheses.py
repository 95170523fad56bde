"""Hypotheses about the planted models (hypotheses/cases/planted/model.py): true ones and plausible false ones.

Each entry is (hypothesis, what the toolkit must say). "survives", "rejected",
"flagged" (loss recovered clears the bar but a flag or the cancel-out report
says the hypothesis is wrong) or "no loss" (the model does no better than
random on this output: nothing to explain).
"""

from __future__ import annotations

import math

from hypotheses.features import from_datum
from hypotheses.nodes import Hypothesis, Node
from hypotheses.samplers import Unconditional, agree


def _h(name, *kids, policy="shared"):
    return Hypothesis(Node("output", children=list(kids)), name=name, policy=policy)


def three_terms():
    return [
        (_h("a; b and c cancel on every input", Node("a", "output <- a"),
            Node("b-c pair", ["output <- b", "output <- c"], Unconditional()), policy="independent"), "survives"),
        (_h("only a (shared draw)", Node("a", "output <- a")), "flagged"),
        (_h("only a (independent draws)", Node("a", "output <- a"), policy="independent"), "rejected"),
        (_h("a and b", Node("a", "output <- a"), Node("b", "output <- b")), "rejected"),
    ]


def cancelling_heads():
    prev = lambda: Node("copies the previous token", "output <- head.0.0")  # noqa: E731
    return [
        (_h("0.0 copies; 0.1 and 0.2 cancel on every input", prev(),
            Node("0.1-0.2 pair", ["output <- head.0.1", "output <- head.0.2"], Unconditional()),
            policy="independent"), "survives"),
        (_h("only head 0.0 (shared draw)", prev()), "flagged"),
        (_h("only head 0.0 (independent draws)", prev(), policy="independent"), "rejected"),
        (_h("head 0.1 copies", Node("copies", "output <- head.0.1")), "rejected"),
    ]


def xor_bits(b):
    return b[0] ^ b[1]


def linear_target(b):
    return round(0.5 * b[0] - 0.3 * b[1] + 0.2, 6)


def first_bit(b):
    return b[0]


def xor_and_linear(activation: bool):
    """Scored with MSE on the output each hypothesis is about (see docs/case-studies/planted.md)."""
    xor = Hypothesis(Node("output", sampler=agree(from_datum(xor_bits, name="x1 XOR x2"))),
                     name="XOR output depends only on x1 XOR x2")
    lin = Hypothesis(Node("output", sampler=agree(from_datum(linear_target, name="linear target"))),
                     name="linear output depends only on the linear target")
    bit = Hypothesis(Node("output", sampler=agree(from_datum(first_bit, name="x1"))),
                     name="XOR output depends only on x1")
    return [(xor, "xor", "survives" if activation else "no loss"),
            (lin, "linear", "survives"),
            (bit, "xor", "rejected" if activation else "no loss")]


def sin_of_input(ds) -> list:
    """sin x of each datum, rounded so that x and pi - x agree exactly."""
    return [round(math.sin(v), 5) for v in ds.inputs.squeeze(-1).tolist()]


def distance_from_pi(raw) -> float:
    """The sine dataset's raw column holds |x - pi| (rounded)."""
    return raw


def sine():
    from hypotheses.features import from_batch

    by_sin = from_batch(sin_of_input, name="sin x")
    by_dist = from_datum(distance_from_pi, name="|x - pi|")
    return [
        (Hypothesis(Node("output", sampler=agree(by_sin)), name="output depends only on sin x"), "survives"),
        (Hypothesis(Node("output", sampler=agree(by_dist)), name="output depends only on |x - pi|"), "flagged"),
    ]
