"""Hypotheses about the planted models (hypotheses/cases/planted/model.py): true ones and plausible false ones.

Each entry is (hypothesis, what the toolkit must say, ...). "survives",
"rejected", "flagged" (loss recovered clears the bar but a flag says the
hypothesis is wrong: its output is a different function, or the parts it
leaves out cancel) or "no loss" (the model does no better than random on this
output: nothing to explain). Cancellation cases also list the cancel-out sets
the report must name, exactly (component names as the report writes them).
"""

from __future__ import annotations

import math

from hypotheses.cases.planted.model import TERM_NAMES
from hypotheses.features import from_datum
from hypotheses.nodes import Hypothesis, Node
from hypotheses.samplers import Unconditional, agree


def toolkit_says(verdict) -> str:
    """What the toolkit says of a hypothesis, in the words above, from its verdict and flags alone."""
    if "no loss to recover" in verdict.flags:
        return "no loss"
    if not verdict.survives:
        return "flagged" if "loss preserved but function changed" in verdict.flags else "rejected"
    return "flagged" if verdict.cancels else "survives"


def _h(name, *kids, policy="shared"):
    return Hypothesis(Node("output", children=list(kids)), name=name, policy=policy)


def _set(*components: str) -> frozenset:
    return frozenset(f"output <- {c}" for c in components)


# Each cancellation case: (hypothesis, what the toolkit must say, the cancel-out sets its report must name).

def three_terms():
    return [
        (_h("a; b and c cancel on every input", Node("a", "output <- a"),
            Node("b-c pair", ["output <- b", "output <- c"], Unconditional()), policy="independent"), "survives", []),
        (_h("only a (shared draw)", Node("a", "output <- a")), "flagged", [_set("b", "c")]),
        (_h("only a (independent draws)", Node("a", "output <- a"), policy="independent"), "rejected", []),
        (_h("a and b", Node("a", "output <- a"), Node("b", "output <- b")), "rejected", []),
    ]


def balanced_terms(k: int):
    """out = a + u_1 + ... + u_{k-1} - (u_1 + ... + u_{k-1}), the terms after a named b, c, ..."""
    rest = list(TERM_NAMES[:k])
    listed = ", ".join(rest[:-1]) + f" and {rest[-1]}"
    return [
        (_h(f"a; {listed} cancel on every input", Node("a", "output <- a"),
            Node("cancelling terms", [f"output <- {t}" for t in rest], Unconditional()), policy="independent"),
         "survives", []),
        (_h("only a (shared draw)", Node("a", "output <- a")), "flagged", [_set(*rest)]),
        (_h("only a (independent draws)", Node("a", "output <- a"), policy="independent"), "rejected", []),
        (_h("a and b", Node("a", "output <- a"), Node("b", "output <- b")), "rejected", []),
    ]


def terms_control():
    """Controls on `balanced_terms(4, cancel=False)`: large parts that do not cancel."""
    rest = list(TERM_NAMES[:4])
    return [
        (_h("only a (shared draw)", Node("a", "output <- a")), "rejected", []),
        (_h("every term matters", *(Node(t, f"output <- {t}") for t in ["a", *rest])), "survives", []),
    ]


def small_extras():
    """Controls on `small_extras`: what "only a" leaves out is small and does not cancel."""
    return [
        (_h("only a (shared draw)", Node("a", "output <- a")), "survives", []),
        (_h("only a (independent draws)", Node("a", "output <- a"), policy="independent"), "survives", []),
    ]


def _copier():
    return Node("copies the previous token", "output <- head.0.0")


def cancelling_heads():
    return [
        (_h("0.0 copies; 0.1 and 0.2 cancel on every input", _copier(),
            Node("0.1-0.2 pair", ["output <- head.0.1", "output <- head.0.2"], Unconditional()),
            policy="independent"), "survives", []),
        (_h("only head 0.0 (shared draw)", _copier()), "flagged", [_set("head.0.1", "head.0.2")]),
        (_h("only head 0.0 (independent draws)", _copier(), policy="independent"), "rejected", []),
        (_h("head 0.1 copies", Node("copies", "output <- head.0.1")), "rejected", []),
    ]


def three_heads():
    """Two positive heads (0.1, 0.2) and one negative head (0.3) that cancel at the output."""
    writers = ["head.0.1", "head.0.2", "head.0.3"]
    return [
        (_h("0.0 copies; 0.1, 0.2 and 0.3 cancel on every input", _copier(),
            Node("0.1-0.2-0.3", [f"output <- {w}" for w in writers], Unconditional()), policy="independent"),
         "survives", []),
        (_h("only head 0.0 (shared draw)", _copier()), "flagged", [_set(*writers)]),
        (_h("only head 0.0 (independent draws)", _copier(), policy="independent"), "rejected", []),
        (_h("heads 0.0 and 0.1", _copier(), Node("0.1", "output <- head.0.1")), "rejected", []),
    ]


def head_and_mlp():
    """Head 0.1 and the MLP that cancel it."""
    return [
        (_h("0.0 copies; 0.1 and the MLP cancel on every input", _copier(),
            Node("0.1 and MLP", ["output <- head.0.1", "output <- mlp.0"], Unconditional()), policy="independent"),
         "survives", []),
        (_h("only head 0.0 (shared draw)", _copier()), "flagged", [_set("head.0.1", "mlp.0")]),
        (_h("only head 0.0 (independent draws)", _copier(), policy="independent"), "rejected", []),
    ]


def unrelated_heads():
    """Controls on `unrelated_heads`: large writes that do not cancel. "Only head 0.0" keeps the loss (the
    writes are noise to the task) but not the function: flagged by the output distance, not as cancelling."""
    writers = ["head.0.1", "head.0.2", "head.0.3"]
    return [
        (_h("only head 0.0 (shared draw)", _copier()), "flagged", []),
        (_h("every head matters", _copier(), *(Node(w, f"output <- {w}") for w in writers)), "survives", []),
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


def cancellation_cases() -> dict:
    """Every cancellation case by its bundled name (`planted-<key>` names its model and data): (its
    hypotheses with expectations and sets, its loss, a label that tells its spec files apart, or None)."""
    from metrics.losses import MSELoss, NextTokenLoss

    return {
        "terms": (three_terms, MSELoss(), None),
        "terms3": (lambda: balanced_terms(3), MSELoss(), "3 terms"),
        "terms4": (lambda: balanced_terms(4), MSELoss(), "4 terms"),
        "terms-control": (terms_control, MSELoss(), "terms that do not cancel"),
        "small-extras": (small_extras, MSELoss(), "small extras"),
        "heads": (cancelling_heads, NextTokenLoss(), None),
        "heads3": (three_heads, NextTokenLoss(), "three heads"),
        "head-mlp": (head_and_mlp, NextTokenLoss(), "head and MLP"),
        "heads-control": (unrelated_heads, NextTokenLoss(), "heads that do not cancel"),
    }
