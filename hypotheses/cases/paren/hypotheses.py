"""Hypotheses about the paren balancer, after the original causal scrubbing paren experiments.

The informal story (from the original analysis of the external model): the
classification is read at position 0; head 2.0 there carries the *count test*
(are there as many closes as opens), heads 1.0 and 2.1 carry the *horizon
test* (does the running count ever go negative), and a string is balanced when
both pass. Features are plain Python functions of the bracket string
(`hypotheses.cases.paren.model`). Every hypothesis claims heads at position 0 only;
everything it does not claim is resampled.
"""

from __future__ import annotations

from hypotheses.cases.paren import model as P

from hypotheses.features import from_datum
from hypotheses.nodes import Hypothesis, Node
from hypotheses.samplers import agree


def count_test(s: str) -> bool:
    return P.is_equal_count(s)


def horizon_test(s: str) -> bool:
    return P.elevation_never_negative(s)


def starts_open(s: str) -> bool:
    return P.starts_with_open(s)


def both_tests(s: str) -> tuple:
    return (P.is_equal_count(s), P.elevation_never_negative(s))


def balanced(s: str) -> bool:
    return P.is_balanced(s)


COUNT = from_datum(count_test, name="count test")
HORIZON = from_datum(horizon_test, name="horizon test")
OPEN = from_datum(starts_open, name="starts with (")
BOTH = from_datum(both_tests, name="count and horizon tests")
BALANCED = from_datum(balanced, name="balanced")

HEADS = ["output <- head.1.0@0", "output <- head.2.0@0", "output <- head.2.1@0"]


def _h(name: str, *kids: Node) -> Hypothesis:
    return Hypothesis(Node("output", children=list(kids)), name=name)


def count_and_horizon() -> Hypothesis:
    """2.0 computes the count test; 1.0 and 2.1 compute the horizon test (separate data)."""
    return _h("2.0 count test; 1.0, 2.1 horizon test",
              Node("count test", "output <- head.2.0@0", agree(COUNT)),
              Node("horizon test", ["output <- head.1.0@0", "output <- head.2.1@0"], agree(HORIZON)))


def count_horizon_open() -> Hypothesis:
    """As above, but 1.0 only checks that the string starts with an open bracket."""
    return _h("2.0 count; 2.1 horizon; 1.0 starts with (",
              Node("count test", "output <- head.2.0@0", agree(COUNT)),
              Node("horizon test", "output <- head.2.1@0", agree(HORIZON)),
              Node("starts with (", "output <- head.1.0@0", agree(OPEN)))


def heads_see_both_tests() -> Hypothesis:
    """The three heads together carry both tests (one datum agreeing on both)."""
    return _h("1.0, 2.0, 2.1 carry both tests", Node("both tests", HEADS, agree(BOTH)))


def heads_see_balanced() -> Hypothesis:
    """The three heads together carry only 'balanced or not'."""
    return _h("1.0, 2.0, 2.1 carry 'balanced'", Node("balanced", HEADS, agree(BALANCED)))


def heads_exact() -> Hypothesis:
    """Upper reference: the three heads, exactly as the model computes them."""
    return _h("1.0, 2.0, 2.1 exact", Node("three heads", HEADS))


def naive_count_only() -> Hypothesis:
    """Claims too little: head 2.0's count test alone decides."""
    return _h("naive: 2.0 count test alone", Node("count test", "output <- head.2.0@0", agree(COUNT)))


ALL = (count_and_horizon, count_horizon_open, heads_see_both_tests, heads_see_balanced, heads_exact,
       naive_count_only)


def predict_balanced(values) -> object:
    """The interpretation's output from the count and horizon nodes' feature values (for IIA)."""
    return values["count test"].astype(bool) & values["horizon test"].astype(bool)
